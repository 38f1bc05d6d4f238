"""A per-layer sensitivity scan measured on Ray: the points of
:func:`~squeezestudio.core.measure.sensitivity.layer_sensitivity`, one task each.

The baseline is one more task; every ``(layer, method, level)`` job runs
:func:`~squeezestudio.core.measure.sensitivity.measure_sensitivity_job` in a
worker. Points are stored in the results file as they arrive and returned in
the local scan's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from squeezestudio.core.cluster.connection import RayConnection
from squeezestudio.core.measure.evaluation import reference_predictions
from squeezestudio.core.measure.point_log import PointLog, inputs_fingerprint, point_key
from squeezestudio.core.cluster.ray_sweep import FailedPoint, put_shared
from squeezestudio.core.cluster.task_stream import TaskOutcome, remote_function, stream_tasks
from squeezestudio.core.cluster.worker_side import WorkerSettings, evaluate_baseline, measure_sensitivity_point
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.sensitivity import (PRUNE_LEVELS, QUANT_BITS, SensitivityPoint, SensitivityResult,
                                                    check_levels, compressible_layers, sensitivity_jobs)
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, report

BASELINE = ("", "baseline", 0.0)


@dataclass
class ClusterSensitivity:
    """The scan's result (points in local order), the jobs that failed, and how many were resumed."""

    result: SensitivityResult
    failed: list[FailedPoint] = field(default_factory=list)
    resumed: int = 0


def layer_sensitivity_on_ray(conn: RayConnection, handle: ModelHandle, data: ImageDataset, *,
                             layers: Optional[Sequence[str]] = None,
                             prune_levels: Sequence[float] = PRUNE_LEVELS,
                             quant_bits: Sequence[int] = QUANT_BITS, cluster_bits: Sequence[int] = (),
                             batch_size: Optional[int] = None, log: Optional[PointLog] = None,
                             on_point: Optional[Callable[[int, Optional[SensitivityPoint]], None]] = None,
                             progress: Optional[ProgressCallback] = None,
                             cancel: Optional[CancelToken] = None) -> ClusterSensitivity:
    """The scan :func:`layer_sensitivity` makes, with the jobs spread over ``conn``'s cluster."""
    names = list(layers) if layers is not None else compressible_layers(handle)
    check_levels(prune_levels, quant_bits, cluster_bits)
    jobs = [BASELINE] + sensitivity_jobs(names, prune_levels, quant_bits, cluster_bits)
    fingerprint = inputs_fingerprint(handle, data, batch_size) if log is not None else ""
    keys = [point_key(fingerprint, "sensitivity", list(job)) for job in jobs]
    stored = log.measured() if log is not None else {}
    values: dict[int, Any] = {}
    failed: dict[int, FailedPoint] = {}
    todo = []
    for i, job in enumerate(jobs):
        entry = stored.get(keys[i])
        if entry is not None and entry.get("status") == "measured":
            v = entry["value"]
            values[i] = v if i == 0 else SensitivityPoint(job[0], job[1], job[2], v["top1"], v["agreement"])
        else:
            todo.append(i)
    resumed = len(values)
    shared: list[Any] = []
    if todo:
        # The original's predictions once, here, as the local scan computes them: each worker would otherwise
        # run the original again for every point's agreement.
        report(progress, 0.0, "measuring the original model")
        reference = reference_predictions(handle.module, data, batch_size=batch_size, cancel=cancel)
        report(progress, 0.0, "sending the model and the data to the cluster")
        shared = put_shared(conn, handle, data, reference)
    point_task = remote_function(conn, measure_sensitivity_point)
    baseline_task = remote_function(conn, evaluate_baseline)
    settings = WorkerSettings.of_driver(conn.target.cpus_per_task)

    def submit(i: int) -> Any:
        if i == 0:
            return baseline_task.remote(shared, batch_size, settings)
        return point_task.remote(shared, jobs[i], batch_size, settings)

    def describe(i: int) -> str:
        layer, method, level = jobs[i]
        return "baseline" if i == 0 else f"{layer}: {method} {level:g}"

    def arrived(outcome: TaskOutcome) -> None:
        i = outcome.index
        if outcome.ok:
            values[i] = outcome.value
            if log is not None:
                value = outcome.value if i == 0 else {"top1": outcome.value.top1,
                                                      "agreement": outcome.value.agreement}
                log.record(keys[i], {"status": "measured", "job": list(jobs[i]), "value": value})
        else:
            failed[i] = FailedPoint(describe(i), outcome.error or "unknown failure")
            if log is not None:
                log.record(keys[i], {"status": "failed", "job": list(jobs[i]), "reason": failed[i].reason})
        if on_point is not None and i > 0:
            on_point(i - 1, values.get(i))

    stream_tasks(conn, submit, todo, on_outcome=arrived, describe=describe, progress=progress, cancel=cancel,
                 done_before=resumed, total=len(jobs))
    report(progress, 1.0, "sensitivity done")
    result = SensitivityResult(baseline_top1=values.get(0))
    result.points = [values[i] for i in sorted(values) if i > 0]
    return ClusterSensitivity(result=result, failed=[failed[i] for i in sorted(failed)], resumed=resumed)
