"""Per-layer sensitivity: how accuracy falls as one layer alone is compressed.

As in Distiller and Sparsify, each layer is pruned (and, separately,
quantized) on its own at increasing levels while every other layer stays
exact; the curves show which layers tolerate aggressive settings, which is
what a practitioner needs to choose per-layer overrides.
:func:`check_scan` checks every option before the first evaluation (a bad
level fails in milliseconds, not after minutes), and
:func:`settings_within` / :func:`recipe_within` turn a scan into settings:
for each layer the most aggressive level that costs at most X points.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.measure.evaluation import evaluate, reference_predictions
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe, validate, weighted_layers
from squeezestudio.core.compression.registry import MethodRegistry

PRUNE_LEVELS = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95)
QUANT_BITS = (8, 6, 4, 3, 2)  # symmetric uniform quantization needs 2 bits or more


@dataclass(frozen=True)
class SensitivityPoint:
    layer: str
    method: str  # "prune" (level = sparsity), "quantize" or "cluster" (level = bits)
    level: float
    top1: Optional[float]
    agreement: Optional[float]
    loss: Optional[float] = None  # mean cross-entropy, a smoother signal than top-1 (the budget search uses it)


@dataclass
class SensitivityResult:
    """Baseline accuracy and one point per (layer, method, level)."""

    baseline_top1: Optional[float]
    points: list[SensitivityPoint] = field(default_factory=list)
    baseline_loss: Optional[float] = None

    def curves(self, method: str) -> dict[str, list[tuple[float, Optional[float]]]]:
        """``{layer: [(level, top1), ...]}`` for one method, in level order."""
        out: dict[str, list[tuple[float, Optional[float]]]] = {}
        for p in self.points:
            if p.method == method:
                out.setdefault(p.layer, []).append((p.level, p.top1))
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["layer", "method", "level", "top1", "agreement", "baseline_top1"])
        for p in self.points:
            writer.writerow([p.layer, p.method, p.level, p.top1, p.agreement, self.baseline_top1])
        return buf.getvalue()


def compressible_layers(handle: ModelHandle) -> list[str]:
    """Names of the Conv2d/Linear layers, in model order."""
    return list(weighted_layers(handle.module))


def parse_levels(text: str, what: str) -> list[float]:
    """Comma-separated numbers from a flag (``0.5,0.9``), or a sentence naming the bad one."""
    values = []
    for item in (v.strip() for v in str(text).split(",")):
        if not item:
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise RecipeError(f"the {what} must be numbers separated by commas, not {item[:40]!r}") from None
    if not values:
        raise RecipeError(f"give at least one value for the {what}")
    return values


def check_levels(prune_levels: Sequence[float], quant_bits: Sequence[float], cluster_bits: Sequence[float]) -> None:
    """Sparsities finite in [0, 1), bit-widths whole numbers from 1 to 32: refused before any work."""
    for s in prune_levels:
        if not (isinstance(s, (int, float)) and math.isfinite(s) and 0.0 <= s < 1.0):
            raise RecipeError(f"a pruning level must be a finite number from 0 up to (not including) 1, not {s}")
    for b in list(quant_bits) + list(cluster_bits):
        if not (isinstance(b, (int, float)) and math.isfinite(b) and float(b).is_integer() and 1 <= b <= 32):
            raise RecipeError(f"a bit-width must be a whole number from 1 to 32, not {b}")


SensitivityJob = tuple[str, str, float]  # (layer, method, level)


def sensitivity_jobs(names: Sequence[str], prune_levels: Sequence[float] = PRUNE_LEVELS,
                     quant_bits: Sequence[int] = QUANT_BITS,
                     cluster_bits: Sequence[int] = ()) -> list[SensitivityJob]:
    """Every ``(layer, method, level)`` a scan measures, in the order of its points."""
    jobs = [(n, "prune", float(s)) for n in names for s in prune_levels]
    jobs += [(n, "quantize", float(b)) for n in names for b in quant_bits]
    jobs += [(n, "cluster", float(b)) for n in names for b in cluster_bits]
    return jobs


def measure_sensitivity_job(handle: ModelHandle, data: ImageDataset, job: SensitivityJob, *,
                            registry: MethodRegistry, batch_size: Optional[int] = None,
                            reference: Optional[Any] = None, cancel: Optional[CancelToken] = None) -> SensitivityPoint:
    """Compress one layer alone at one level and measure it (local scans and cluster workers).

    ``reference`` is the original's top-1 on ``data`` (from
    :func:`reference_predictions`), computed once per scan; without it the
    original runs again for every point.
    """
    layer, method, level = job
    cm = compress(handle, Recipe(layers={layer: {method: _options(method, level)}}), registry=registry, cancel=cancel)
    r = evaluate(cm.handle.module, data, batch_size=batch_size,
                 reference=reference if reference is not None else handle.module, cancel=cancel)
    return SensitivityPoint(layer, method, level, r.top1, r.agreement, r.loss)
def _options(method: str, level: float) -> dict:
    """The method options one scan level stands for (a sparsity, or a bit-width)."""
    return {"sparsity": level} if method == "prune" else {"bits": int(level)}


def check_scan(handle: ModelHandle, layers: Sequence[str], jobs: Sequence[SensitivityJob], *,
               registry: MethodRegistry) -> None:
    """Raise a :class:`RecipeError` for an unknown layer or an invalid level, before any work."""
    names = list(weighted_layers(handle.module))
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise RecipeError(f"the model has no layer {unknown[0]!r} with weights; its layers are: {shown}")
    for method, level in sorted({(m, lv) for _, m, lv in jobs}):
        if method != "prune" and float(level) != int(level):
            raise RecipeError(f"{method} takes whole bit-widths, not {level:g}")
        try:
            validate(Recipe(methods={method: _options(method, level)}), names, registry)
        except RecipeError as exc:
            what = "sparsity" if method == "prune" else "bits"
            raise RecipeError(f"cannot scan {method} at {what} {level:g}: {exc}") from None


def layer_sensitivity(handle: ModelHandle, data: ImageDataset, *,
                      registry: MethodRegistry, layers: Optional[Sequence[str]] = None,
                      prune_levels: Sequence[float] = PRUNE_LEVELS,
                      quant_bits: Sequence[int] = QUANT_BITS, cluster_bits: Sequence[int] = (),
                      batch_size: Optional[int] = None,
                      progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> SensitivityResult:
    """Prune, then quantize (then cluster), each layer alone at each level and measure accuracy.

    Pass an empty sequence to skip a method (the desktop app scans one method
    at a time); ``cluster_bits`` is empty by default.
    """
    names = list(layers) if layers is not None else compressible_layers(handle)
    check_levels(prune_levels, quant_bits, cluster_bits)
    jobs = sensitivity_jobs(names, prune_levels, quant_bits, cluster_bits)
    check_scan(handle, names, jobs, registry=registry)
    report(progress, 0.0, "measuring the original model")
    baseline = evaluate(handle.module, data, batch_size=batch_size, cancel=cancel)
    result = SensitivityResult(baseline_top1=baseline.top1, baseline_loss=baseline.loss)
    reference = reference_predictions(handle.module, data, batch_size=batch_size, cancel=cancel)
    for i, job in enumerate(jobs):
        check(cancel)
        layer, method, level = job
        report(progress, i / max(1, len(jobs)), f"{layer}: {method} {level:g}")
        result.points.append(measure_sensitivity_job(handle, data, job, registry=registry, batch_size=batch_size,
                                                     reference=reference, cancel=cancel))
    report(progress, 1.0, "sensitivity done")
    return result


def settings_within(result: SensitivityResult, method: str, max_drop_points: float) -> dict[str, float]:
    """For each layer, the most aggressive level of ``method`` whose top-1 is at most X points below the baseline.

    Most aggressive = highest sparsity for pruning, fewest bits otherwise.
    Layers where no level qualifies are left out (they stay uncompressed).
    """
    if result.baseline_top1 is None:
        raise RecipeError("the scan has no accuracy (the data has no labels), so no setting can be chosen by it")
    floor = result.baseline_top1 - float(max_drop_points) / 100.0
    chosen: dict[str, float] = {}
    for layer, points in result.curves(method).items():
        good = [level for level, top1 in points if top1 is not None and top1 >= floor - 1e-12]
        if good:
            chosen[layer] = max(good) if method == "prune" else min(good)
    return chosen


def recipe_within(result: SensitivityResult, method: str, max_drop_points: float) -> Recipe:
    """A per-layer :class:`Recipe` from :func:`settings_within` (each layer its own override)."""
    chosen = settings_within(result, method, max_drop_points)
    if not chosen:
        raise RecipeError(f"no layer keeps its {method} cost within {max_drop_points:g} point(s); allow more")
    return Recipe(name=f"sensitivity: {method} within {max_drop_points:g} point(s)",
                  layers={layer: {method: _options(method, level)} for layer, level in chosen.items()})
