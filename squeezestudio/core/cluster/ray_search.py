"""The byte-budget search with its measurements on Ray: every table cell and every candidate is a task.

:class:`RaySearchMeasurer` is a :class:`~squeezestudio.core.search.measurer.SearchMeasurer`
for :func:`~squeezestudio.core.search.budget_search.search_budget`: the search
itself (its choices, its repairs, the final measurement) runs here, and each
batch it asks for -- the per-layer table's cells, then each round of candidate
recipes -- is sent to the cluster as one task per item, running the same core
function a local search runs (:func:`measure_table_entry`,
:func:`measure_candidates`). The original model's file length, loss and
predictions are measured here first (one model, not worth a task); the model,
the held-out data and those predictions go to the object store once.

Results come back in the local order, so the search makes the local choices.
Each measured cell and candidate is stored in the results file as it arrives:
an interrupted search, run again, measures only what is missing. A cell or
candidate that still fails after its retry stops the search with its reason
(a search without one of its measurements would not be the local search);
what was measured is kept for the rerun.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from squeezestudio.core.cluster.connection import RayConnection
from squeezestudio.core.measure.point_log import PointLog, inputs_fingerprint, point_key
from squeezestudio.core.cluster.ray_sweep import put_shared
from squeezestudio.core.cluster.task_stream import TaskOutcome, remote_function, stream_tasks
from squeezestudio.core.cluster.worker_side import WorkerSettings, measure_search_candidate, measure_table_cell
from squeezestudio.core.compression.recipe import recipe_to_dict
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import ClusterError
from squeezestudio.core.measure.sensitivity import SensitivityResult
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, report
from squeezestudio.core.search.candidates import CandidateResult
from squeezestudio.core.search.layer_table import (LayerTable, TableEntry, measure_table_base, reused_entry,
                                                   table_jobs)
from squeezestudio.core.search.measurer import SearchMeasurer
from squeezestudio.core.search.settings import LayerSetting


def _setting_key(layer: str, setting: LayerSetting) -> list[Any]:
    return [layer, setting.sparsity, setting.cluster_bits, setting.quant_bits]


class RaySearchMeasurer(SearchMeasurer):
    """Measures the search's table cells and candidates as Ray tasks on ``conn``'s cluster.

    With a ``log``, what it already holds for these inputs is not measured
    again, and every new measurement is recorded there as it arrives.
    ``resumed`` and ``sent`` count what came from the log and what ran as a task.
    """

    def __init__(self, conn: RayConnection, *, log: Optional[PointLog] = None) -> None:
        super().__init__()
        self.conn = conn
        self.log = log
        self.resumed = 0
        self.sent = 0
        self._fingerprint: Optional[tuple[ImageDataset, str]] = None
        self._shared: Optional[tuple[ImageDataset, list[Any]]] = None

    def table(self, handle: ModelHandle, selection: ImageDataset, layers: Sequence[str],
              settings: Sequence[LayerSetting], *, registry: MethodRegistry,
              sensitivity: Optional[SensitivityResult] = None, batch_size: Optional[int] = None,
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> LayerTable:
        report(progress, 0.0, "measuring the original model")
        table, reference = measure_table_base(handle, selection, registry=registry, batch_size=batch_size,
                                              cancel=cancel)
        self._reference = (selection, reference)
        jobs = table_jobs(layers, settings)
        task = remote_function(self.conn, measure_table_cell)
        worker = WorkerSettings.of_driver(self.conn.target.cpus_per_task)

        def submit(shared: list[Any], i: int) -> Any:
            layer, setting = jobs[i]
            return task.remote(shared, layer, setting, table.base_bytes, reused_entry(sensitivity, layer, setting),
                               batch_size, worker)

        entries = self._run("search-table", [_setting_key(*job) for job in jobs], submit,
                            describe=lambda i: f"{jobs[i][0]}: {jobs[i][1].label()}",
                            to_json=dataclasses.asdict, from_json=lambda d: TableEntry(**d),
                            handle=handle, data=selection, batch_size=batch_size, progress=progress, cancel=cancel)
        for (layer, setting), entry in zip(jobs, entries):
            table.entries.setdefault(layer, {})[setting] = entry
        report(progress, 1.0, "layer table measured")
        return table

    def candidates(self, handle: ModelHandle, candidates: Sequence[tuple[str, Any]], data: ImageDataset, *,
                   registry: MethodRegistry, batch_size: Optional[int] = None,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> list[CandidateResult]:
        self.reference(handle, data, batch_size=batch_size, cancel=cancel)
        items = list(candidates)
        task = remote_function(self.conn, measure_search_candidate)
        worker = WorkerSettings.of_driver(self.conn.target.cpus_per_task)

        def submit(shared: list[Any], i: int) -> Any:
            label, recipe = items[i]
            return task.remote(shared, label, recipe, batch_size, worker)

        results = self._run("search-candidate", [recipe_to_dict(recipe) for _, recipe in items], submit,
                            describe=lambda i: items[i][0], to_json=dataclasses.asdict,
                            from_json=lambda d: CandidateResult(**d), handle=handle, data=data,
                            batch_size=batch_size, progress=progress, cancel=cancel)
        report(progress, 1.0, "candidates measured")
        return results

    def _key_prefix(self, handle: ModelHandle, data: ImageDataset, batch_size: int) -> str:
        if self._fingerprint is None or self._fingerprint[0] is not data:
            self._fingerprint = (data, inputs_fingerprint(handle, data, batch_size))
        return self._fingerprint[1]

    def _bundle(self, handle: ModelHandle, data: ImageDataset, batch_size: int,
                cancel: Optional[CancelToken]) -> list[Any]:
        """The model, ``data`` and the original's predictions on it, in the object store once per data set."""
        if self._shared is None or self._shared[0] is not data:
            reference = self.reference(handle, data, batch_size=batch_size, cancel=cancel)
            self._shared = (data, put_shared(self.conn, handle, data, reference))
        return self._shared[1]

    def _run(self, kind: str, what: list[Any], submit: Callable[[list[Any], int], Any], *,
             describe: Callable[[int], str], to_json: Callable[[Any], dict[str, Any]],
             from_json: Callable[[dict[str, Any]], Any], handle: ModelHandle, data: ImageDataset,
             batch_size: int, progress: Optional[ProgressCallback],
             cancel: Optional[CancelToken]) -> list[Any]:
        """One task per item of ``what`` (its key in the log), resumed from the log; values in item order."""
        log = self.log
        keys = [point_key(self._key_prefix(handle, data, batch_size), kind, w) for w in what] if log else []
        stored = log.measured() if log is not None else {}
        values: dict[int, Any] = {}
        for i in range(len(what)):
            entry = stored.get(keys[i]) if log is not None else None
            if entry is not None and entry.get("status") == "measured":
                values[i] = from_json(entry["value"])
        todo = [i for i in range(len(what)) if i not in values]
        self.resumed += len(values)
        self.sent += len(todo)
        failed: dict[int, str] = {}
        shared = self._bundle(handle, data, batch_size, cancel) if todo else []

        def arrived(outcome: TaskOutcome) -> None:
            i = outcome.index
            where = None if outcome.worker is None else f"{outcome.worker.host}:{outcome.worker.pid}"
            if outcome.ok:
                values[i] = outcome.value
                record = {"status": "measured", "label": describe(i), "value": to_json(outcome.value)}
            else:
                failed[i] = outcome.error or "unknown failure"
                record = {"status": "failed", "label": describe(i), "reason": failed[i]}
            if log is not None:
                log.record(keys[i], {**record, "worker": where})

        stream_tasks(self.conn, lambda i: submit(shared, i), todo, on_outcome=arrived, describe=describe,
                     progress=progress, cancel=cancel, done_before=len(what) - len(todo), total=len(what))
        if failed:
            i = min(failed)
            kept = f"; what was measured is kept in {log.folder}, so a rerun measures only the rest" if log else ""
            raise ClusterError(f"the search could not measure {describe(i)} ({failed[i]}){kept}")
        return [values[i] for i in range(len(what))]
