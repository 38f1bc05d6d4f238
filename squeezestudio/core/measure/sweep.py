"""Sweeps: many compression configurations measured on the same data.

A grid is written ``method.option=v1,v2,...`` (``none`` or ``off`` leaves the
method out for that point); the sweep is the Cartesian product over all grid
axes applied on top of a base recipe. Each point is measured with
:func:`~squeezestudio.core.measure.measure_recipe.measure_recipe` (exact .sqz bytes, accuracy
on data), so a sweep row is exactly what the GUI would plot for that recipe.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import CodecError, RecipeError
from squeezestudio.core.measure.measure_recipe import measure_recipe, retrains
from squeezestudio.core.measure.point_log import PointLog, inputs_fingerprint, point_key
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled
from squeezestudio.core.compression.recipe import Recipe, parse_option_value, recipe_to_dict
from squeezestudio.core.compression.registry import MethodRegistry

OFF_VALUES = ("none", "off")


@dataclass(frozen=True)
class GridAxis:
    """One swept option: ``method.option`` and its values (None = method off)."""

    method: str
    option: str
    values: tuple[Any, ...]


@dataclass
class SweepRow:
    """One measured configuration."""

    label: str
    recipe: dict[str, Any]
    size_bytes: int
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed: bool = field(default=False, compare=False)  # read back from a results file, not measured now

    def metric(self, name: str) -> Optional[float]:
        """A metric's value, or None when not measured: rows answer like experiments, so
        :func:`~squeezestudio.core.session.plot_axes.plot_frontier` takes either."""
        value = self.metrics.get(name)
        return None if value is None else float(value)


def parse_grid_axis(text: str) -> GridAxis:
    """Read ``"prune.sparsity=0,0.5,0.9"`` (``none``/``off`` allowed as a value)."""
    key, eq, values = text.partition("=")
    method, dot, option = key.strip().partition(".")
    if not eq or not dot or not method or not option or not values.strip():
        raise RecipeError(f"cannot read the grid axis {text!r}; write METHOD.OPTION=V1,V2,... "
                          "e.g. prune.sparsity=0.5,0.8,0.9")
    parsed = tuple(None if v.strip().lower() in OFF_VALUES else parse_option_value(v.strip())
                   for v in values.split(",") if v.strip())
    return GridAxis(method=method, option=option, values=parsed)


def grid_recipes(axes: Sequence[GridAxis], base: Any = None) -> list[tuple[str, Any]]:
    """``(label, recipe)`` for every point of the grid, on top of ``base``."""
    base = base if base is not None else Recipe()
    points = []
    for combo in itertools.product(*(axis.values for axis in axes)):
        recipe = copy.deepcopy(base)
        target = recipe.stages[-1] if recipe.stages else recipe  # a staged base: the grid sets its last stage
        parts = []
        for axis, value in zip(axes, combo):
            if value is None:
                parts.append(f"{axis.method} off")
            else:
                target.methods.setdefault(axis.method, {})[axis.option] = value
                parts.append(f"{axis.method}.{axis.option}={value}")
        # "off" wins over any other axis of the same method.
        for axis, value in zip(axes, combo):
            if value is None:
                target.methods.pop(axis.method, None)
        points.append((", ".join(parts) or "original", recipe))
    return points


def sweep_points(points: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Every point a sweep measures, in its row order: the original model first, then ``points``."""
    return [("original", Recipe())] + list(points)


def measure_point(handle: ModelHandle, data: ImageDataset, label: str, recipe: Any, *,
                  registry: MethodRegistry, batch_size: Optional[int] = None, with_file: bool = True,
                  train_data: Optional[ImageDataset] = None, calibration: Optional[torch.Tensor] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> tuple[SweepRow, Optional[bytes]]:
    """One sweep row and (``with_file``) the .sqz bytes it measured (the row's size is their length).

    The local loop and a cluster worker both measure through this function, so
    a point is the same wherever it ran. ``train_data`` is what recipes that
    retrain (a stage's ``finetune``) train on; ``calibration`` the images that
    substitutions are fitted on and activation ranges measured on.
    """
    m = measure_recipe(handle, recipe, data, registry=registry, reference=handle.module, batch_size=batch_size,
                       train_data=train_data, calibration=calibration, progress=progress, cancel=cancel)
    row = SweepRow(label=label, recipe=recipe_to_dict(recipe), size_bytes=m.size_bytes, metrics=m.metrics())
    if not with_file:
        return row, None
    sqz = m.sqz_bytes  # the bytes measured
    if len(sqz) != m.size_bytes:
        raise CodecError(f"{label}: the file encodes to {len(sqz)} bytes, not the {m.size_bytes} measured")
    return row, sqz


def sweep_keys(handle: ModelHandle, data: ImageDataset, all_points: Sequence[tuple[str, Any]], *,
               batch_size: Optional[int], train_data: Optional[ImageDataset] = None) -> list[str]:
    """Each point's key in a results file: the inputs (the training data too, for a point that retrains) + recipe.

    The same for a local sweep and one on Ray, so either resumes the other's folder.
    """
    plain = inputs_fingerprint(handle, data, batch_size)
    trained = inputs_fingerprint(handle, data, batch_size, train_data) if train_data is not None else plain
    return [point_key(trained if retrains(recipe) else plain, "sweep", recipe_to_dict(recipe))
            for _, recipe in all_points]


def stored_rows(log: PointLog, keys: Sequence[str], all_points: Sequence[tuple[str, Any]]) -> dict[int, SweepRow]:
    """The rows ``log`` already holds for these points (by position), labelled as in this sweep."""
    stored = log.measured()
    rows = {}
    for i, (label, _) in enumerate(all_points):
        entry = stored.get(keys[i])
        if entry is not None and entry.get("status") == "measured":
            rows[i] = SweepRow(label=label, recipe=entry["recipe"], size_bytes=int(entry["size_bytes"]),
                               metrics=dict(entry["metrics"]), resumed=True)
    return rows


def record_row(log: PointLog, key: str, row: SweepRow, sqz: Optional[bytes], worker: Optional[str] = None) -> None:
    """Store one measured row and its .sqz file in ``log`` now."""
    log.record(key, {"status": "measured", "label": row.label, "recipe": row.recipe, "size_bytes": row.size_bytes,
                     "metrics": row.metrics, "worker": worker}, sqz)


def run_sweep(handle: ModelHandle, data: ImageDataset, points: Sequence[tuple[str, Any]], *,
              registry: MethodRegistry,
              batch_size: Optional[int] = None, train_data: Optional[ImageDataset] = None,
              calibration: Optional[torch.Tensor] = None,
              log: Optional[PointLog] = None, progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> list[SweepRow]:
    """Measure every ``(label, recipe)`` point; the original model is measured first.

    ``train_data`` is what recipes that retrain (a stage's ``finetune``) train on.
    With a ``log``, points it already holds for these inputs are not measured
    again (their rows say ``resumed``), and each new point is recorded there,
    with its .sqz, the moment it is measured: an interrupted sweep resumes.
    """
    all_points = sweep_points(points)
    keys = sweep_keys(handle, data, all_points, batch_size=batch_size, train_data=train_data) if log is not None else []
    done = stored_rows(log, keys, all_points) if log is not None else {}
    rows: list[SweepRow] = []
    for i, (label, recipe) in enumerate(all_points):
        if i in done:
            rows.append(done[i])
            continue
        check(cancel)
        report(progress, i / len(all_points), label)
        row, sqz = measure_point(handle, data, label, recipe, registry=registry, batch_size=batch_size,
                                 with_file=log is not None, train_data=train_data, calibration=calibration,
                                 progress=scaled(progress, i / len(all_points), (i + 1) / len(all_points)),
                                 cancel=cancel)
        if log is not None:
            record_row(log, keys[i], row, sqz)
        rows.append(row)
    report(progress, 1.0, "sweep done")
    return rows


def sweep_csv(rows: Sequence[SweepRow], pareto: Sequence[int] = (), extra: Sequence[str] = ()) -> str:
    """Rows as CSV: label, size, top-1, top-5, agreement, evaluation time, the ``extra`` metrics
    (e.g. the deployable latencies), on the Pareto frontier (``pareto``: row indices)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["label", "size_bytes", "top1", "top5", "agreement", "loss",
                     "latency_ms_per_image", *extra, "pareto"])
    frontier = set(pareto)
    for i, row in enumerate(rows):
        m = row.metrics
        writer.writerow([row.label, row.size_bytes, m.get("top1"), m.get("top5"), m.get("agreement"),
                         m.get("loss"), m.get("latency_ms_per_image"), *(m.get(k) for k in extra), i in frontier])
    return buf.getvalue()
