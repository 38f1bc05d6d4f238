"""What runs inside a Ray worker: set torch up like the driver, decode the shared inputs once, measure.

The model and the preprocessed data set are put in Ray's object store once by
the driver; tasks receive their references wrapped in a list (so Ray does not
resolve them per task) and each worker process fetches and unpickles them on
its first task, keeping them for the next ones. Each point is then measured by
the very function a local run uses (:func:`~squeezestudio.core.measure.sweep.measure_point`,
:func:`~squeezestudio.core.measure.sensitivity.measure_sensitivity_job`, and for the
byte-budget search :func:`~squeezestudio.core.search.layer_table.measure_table_entry` and
:func:`~squeezestudio.core.search.candidates.measure_candidates`).

A :class:`SqueezeStudioError` (bad input: it would fail again) is returned as
a :class:`PointError` instead of raised, so Ray retries only real faults
(a crash, an exception of ours, a dead worker).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Optional

import torch

from squeezestudio.core.compression.registry import MethodRegistry, build_registry
from squeezestudio.core.errors import SqueezeStudioError

_KEEP = 2  # decoded input sets per worker: the current run and the one before


@dataclass(frozen=True)
class WorkerSettings:
    """Torch settings every worker applies before measuring (the driver's choices)."""

    threads: int
    deterministic: bool

    @classmethod
    def of_driver(cls, threads: int) -> "WorkerSettings":
        return cls(threads=int(threads), deterministic=bool(torch.are_deterministic_algorithms_enabled()))

    def apply(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if torch.are_deterministic_algorithms_enabled() != self.deterministic:
            torch.use_deterministic_algorithms(self.deterministic)


@dataclass(frozen=True)
class WorkerInfo:
    """Where a point was measured (shown in reports; tests check retries moved it)."""

    host: str
    pid: int


@dataclass(frozen=True)
class PointError:
    """A point that failed for a reason of the user's input (not retried)."""

    reason: str


# Per-process cache of decoded inputs, keyed by the object-store id of the shared bundle.
_decoded: dict[str, Any] = {}


def shared_inputs(bundle_ref: list[Any]) -> Any:
    """The ``(handle, data)`` bundle behind ``bundle_ref[0]``, fetched once per worker process."""
    import ray  # optional dependency: this module only runs inside Ray workers

    ref = bundle_ref[0]
    key = ref.hex()
    if key not in _decoded:
        while len(_decoded) >= _KEEP:
            _decoded.pop(next(iter(_decoded)))
        _decoded[key] = ray.get(ref)
    return _decoded[key]


# The worker process's method registry, built on its first task (the worker is an entry point, like the CLI).
_registries: list[MethodRegistry] = []


def worker_registry() -> MethodRegistry:
    """Built-ins, installed plugins and the checkout's plugins/ folder: the methods the driver's CLI/GUI offer."""
    if not _registries:
        _registries.append(build_registry())
    return _registries[0]


def _here() -> WorkerInfo:
    return WorkerInfo(host=socket.gethostname(), pid=os.getpid())


def measure_sweep_point(bundle_ref: list[Any], label: str, recipe: Any, batch_size: int,
                        settings: WorkerSettings) -> tuple[Any, Optional[bytes], WorkerInfo]:
    """One sweep point: ``(SweepRow or PointError, .sqz bytes, where)``."""
    from squeezestudio.core.measure.sweep import measure_point

    settings.apply()
    handle, data = shared_inputs(bundle_ref)
    try:
        row, sqz = measure_point(handle, data, label, recipe, registry=worker_registry(), batch_size=batch_size)
    except SqueezeStudioError as exc:
        return PointError(str(exc)), None, _here()
    return row, sqz, _here()


def measure_sensitivity_point(bundle_ref: list[Any], job: tuple[str, str, float], batch_size: int,
                              settings: WorkerSettings) -> tuple[Any, None, WorkerInfo]:
    """One sensitivity point: ``(SensitivityPoint or PointError, None, where)``."""
    from squeezestudio.core.measure.sensitivity import measure_sensitivity_job

    settings.apply()
    handle, data, *more = shared_inputs(bundle_ref)
    reference = more[0] if more else None  # the original's predictions, computed once by the driver
    try:
        point = measure_sensitivity_job(handle, data, job, registry=worker_registry(), batch_size=batch_size,
                                        reference=reference)
    except SqueezeStudioError as exc:
        return PointError(str(exc)), None, _here()
    return point, None, _here()


def evaluate_baseline(bundle_ref: list[Any], batch_size: int,
                      settings: WorkerSettings) -> tuple[Any, None, WorkerInfo]:
    """The original model's top-1 on the data (a sensitivity scan's baseline), as the local scan measures it."""
    from squeezestudio.core.measure.evaluation import evaluate

    settings.apply()
    handle, data = shared_inputs(bundle_ref)[:2]
    try:
        top1 = evaluate(handle.module, data, batch_size=batch_size).top1
    except SqueezeStudioError as exc:
        return PointError(str(exc)), None, _here()
    return top1, None, _here()


def measure_table_cell(bundle_ref: list[Any], layer: str, setting: Any, base_bytes: int,
                       reused: Optional[tuple[float, Optional[float]]], batch_size: int,
                       settings: WorkerSettings) -> tuple[Any, None, WorkerInfo]:
    """One cell of the search's layer table: ``(TableEntry or PointError, None, where)``.

    The bundle is ``(handle, selection data, the original's predictions on it)``.
    """
    from squeezestudio.core.search.layer_table import measure_table_entry

    settings.apply()
    handle, data, reference = shared_inputs(bundle_ref)
    try:
        entry = measure_table_entry(handle, data, layer, setting, base_bytes=base_bytes, reference=reference,
                                    registry=worker_registry(), reused=reused, batch_size=batch_size)
    except SqueezeStudioError as exc:
        return PointError(str(exc)), None, _here()
    return entry, None, _here()


def measure_search_candidate(bundle_ref: list[Any], label: str, recipe: Any, batch_size: int,
                             settings: WorkerSettings) -> tuple[Any, None, WorkerInfo]:
    """One candidate recipe of the search: ``(CandidateResult or PointError, None, where)``."""
    from squeezestudio.core.search.candidates import measure_candidates

    settings.apply()
    handle, data, reference = shared_inputs(bundle_ref)
    try:
        (result,) = measure_candidates(handle, [(label, recipe)], data, registry=worker_registry(),
                                       reference=reference, batch_size=batch_size)
    except SqueezeStudioError as exc:
        return PointError(str(exc)), None, _here()
    return result, None, _here()
