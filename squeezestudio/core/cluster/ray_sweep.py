"""A sweep measured on Ray: the same rows as :func:`~squeezestudio.core.measure.sweep.run_sweep`, in parallel.

The model and the data set go to the object store once; every point (the
original first, as locally) is a task running
:func:`~squeezestudio.core.measure.sweep.measure_point` in a worker and
returning its row with the .sqz bytes. Rows stream back as they finish
(``on_point``), are stored in the results file as they arrive, and are
returned in the local run's order, so the CSV is the local one.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from squeezestudio.core.cluster.connection import RayConnection
from squeezestudio.core.measure.point_log import PointLog
from squeezestudio.core.cluster.task_stream import TaskOutcome, remote_function, stream_tasks
from squeezestudio.core.cluster.worker_side import WorkerInfo, WorkerSettings, measure_sweep_point
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import ClusterError
from squeezestudio.core.measure.sweep import SweepRow, record_row, stored_rows, sweep_keys, sweep_points
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, report


@dataclass(frozen=True)
class FailedPoint:
    """A point that could not be measured (after its retry), and why."""

    label: str
    reason: str


@dataclass
class PointArrival:
    """One point as it arrives: its position in the sweep, its row (or failure) and its file."""

    index: int
    row: Optional[SweepRow]
    failure: Optional[FailedPoint]
    sqz: Optional[bytes] = None
    resumed: bool = False
    worker: Optional[WorkerInfo] = None


@dataclass
class ClusterSweep:
    """Measured rows in sweep order, the points that failed, and how many came from the results file."""

    rows: list[SweepRow] = field(default_factory=list)
    failed: list[FailedPoint] = field(default_factory=list)
    resumed: int = 0


def put_shared(conn: RayConnection, handle: ModelHandle, data: ImageDataset, *more: Any) -> list[Any]:
    """The model, the data (and ``more``) in the object store once, wrapped so tasks do not resolve the reference."""
    try:
        return [conn.ray.put((handle, data, *more))]
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ClusterError(f"this model cannot be sent to Ray workers ({exc}); save it as a state_dict, "
                           "safetensors or ONNX file and open that") from exc


def run_sweep_on_ray(conn: RayConnection, handle: ModelHandle, data: ImageDataset,
                     points: Sequence[tuple[str, Any]], *, batch_size: Optional[int] = None,
                     log: Optional[PointLog] = None,
                     on_point: Optional[Callable[[PointArrival], None]] = None,
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> ClusterSweep:
    """Measure the original and every ``(label, recipe)`` point on ``conn``'s cluster.

    With a ``log``, points it already holds for these inputs are not measured
    again, and each new point is recorded there the moment it arrives.
    ``on_point`` is called on this thread for every point, resumed ones first.
    """
    all_points = sweep_points(points)
    keys = sweep_keys(handle, data, all_points, batch_size=batch_size) if log is not None else []
    rows: dict[int, SweepRow] = stored_rows(log, keys, all_points) if log is not None else {}
    failed: dict[int, FailedPoint] = {}
    if on_point is not None:
        for i in sorted(rows):
            on_point(PointArrival(i, rows[i], None, resumed=True))
    todo = [i for i in range(len(all_points)) if i not in rows]
    resumed = len(rows)
    report(progress, 0.0, "sending the model and the data to the cluster")
    shared = put_shared(conn, handle, data) if todo else []
    task = remote_function(conn, measure_sweep_point)
    settings = WorkerSettings.of_driver(conn.target.cpus_per_task)

    def submit(i: int) -> Any:
        label, recipe = all_points[i]
        return task.remote(shared, label, recipe, batch_size, settings)

    def arrived(outcome: TaskOutcome) -> None:
        i, label = outcome.index, all_points[outcome.index][0]
        where = None if outcome.worker is None else f"{outcome.worker.host}:{outcome.worker.pid}"
        if outcome.ok:
            rows[i] = outcome.value
            if log is not None:
                record_row(log, keys[i], rows[i], outcome.sqz, where)
            arrival = PointArrival(i, rows[i], None, outcome.sqz, worker=outcome.worker)
        else:
            failed[i] = FailedPoint(label, outcome.error or "unknown failure")
            if log is not None:
                log.record(keys[i], {"status": "failed", "label": label, "reason": failed[i].reason,
                                     "worker": where})
            arrival = PointArrival(i, None, failed[i], worker=outcome.worker)
        if on_point is not None:
            on_point(arrival)

    stream_tasks(conn, submit, todo, on_outcome=arrived, describe=lambda i: all_points[i][0],
                 progress=progress, cancel=cancel, done_before=resumed, total=len(all_points))
    report(progress, 1.0, "sweep done")
    return ClusterSweep(rows=[rows[i] for i in sorted(rows)], failed=[failed[i] for i in sorted(failed)],
                        resumed=resumed)
