"""Which numbers a point can be plotted by, which way each is better, and the frontier of any pair.

The trade-off plot shows two of a point's numbers against each other and can
colour by a third: the exact ``.sqz`` size, the accuracies, and the deployable
latencies that Run > Measure latency adds (float and int8 ONNX at batch 1,
:mod:`squeezestudio.core.measure.latency`). Each :class:`PlotMetric` says how
to read it from an :class:`~squeezestudio.core.session.experiments.Experiment`,
its unit, and whether smaller is better (size, latency) or larger (accuracy),
so :func:`plot_frontier` hands :func:`~squeezestudio.core.session.experiments.pareto_frontier`
the right directions for whichever pair is chosen. The window's x/y/colour
choosers and the CLI's ``sweep --x/--y/--color`` both take these keys. Kept
free of Qt, torch and numpy: the window imports it at start-up and the CLI's
argument parser reads :data:`PLOT_METRICS` before anything heavy is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from squeezestudio.core.measure.latency_settings import TARGET_LABELS, TARGETS

SIZE = "size_bytes"
DEFAULT_X, DEFAULT_Y = SIZE, "top1"
"""What goes across and up until the user chooses otherwise (the GUI and the CLI alike)."""


@dataclass(frozen=True)
class PlotMetric:
    """One plottable number: its key, its label, its unit (``bytes``, ``%``, ``ms``) and its better side."""

    key: str
    label: str
    unit: str
    smaller_is_better: bool

    def value(self, experiment: Any) -> Optional[float]:
        """The raw number (bytes, a fraction, milliseconds), or None when the point lacks it."""
        if self.key == SIZE:
            size = float(experiment.size_bytes)
            return size if size > 0 else None
        value = experiment.metric(self.key)
        return None if value is None or not math.isfinite(value) else value

    def shown(self, value: float) -> float:
        """The number as the axis shows it: fractions as percent, the rest as they are."""
        return value * 100.0 if self.unit == "%" else value

    def title(self) -> str:
        """The axis title, with its unit where the tick labels do not carry one."""
        return self.label if self.unit == "bytes" else f"{self.label} ({self.unit})"

    def text(self, value: Optional[float]) -> str:
        """The number for a table cell: ``51,417``, ``85.79%``, ``0.139 ms``; ``-`` when not measured."""
        if value is None:
            return "-"
        if self.unit == "bytes":
            return f"{int(value):,d}"
        return f"{self.shown(value):.2f}%" if self.unit == "%" else f"{value:.3f} {self.unit}"


def latency_key(target: str) -> str:
    """The metric a latency measurement stores for ``target`` at batch 1 (``latency_onnx-int8_b1_ms``)."""
    return f"latency_{target}_b1_ms"


PLOT_METRICS: dict[str, PlotMetric] = {m.key: m for m in (
    PlotMetric(SIZE, "Size of the .sqz file", "bytes", True),
    PlotMetric("top1", "Top-1 accuracy", "%", False),
    PlotMetric("top5", "Top-5 accuracy", "%", False),
    PlotMetric("agreement", "Agreement with original", "%", False),
    *(PlotMetric(latency_key(t), f"Latency, {TARGET_LABELS[t]}, batch 1", "ms", True) for t in TARGETS),
)}
LATENCY_KEYS = tuple(latency_key(t) for t in TARGETS)
"""The metrics only a latency measurement adds (Run > Measure latency, ``--latency``); evaluation never does."""


def plot_metric(key: str) -> PlotMetric:
    """The :class:`PlotMetric` called ``key``; ValueError for an unknown one (a programming error)."""
    try:
        return PLOT_METRICS[key]
    except KeyError:
        raise ValueError(f"unknown plot metric {key!r}; known: {', '.join(PLOT_METRICS)}") from None


def plot_frontier(items: Sequence[Any], x: str, y: str, chance: Optional[float] = None,
                  images: Optional[int] = None) -> list[int]:
    """Indices of the Pareto-optimal ``items`` for the pair (``x``, ``y``), ordered by increasing x.

    A point without either number, or no better than guessing (its top-1 at
    or below ``chance``), is never on the frontier. With ``images``, neither
    is a point measured on another number of images: a point on all the data
    and one on a subset do not compare like with like
    (:func:`~squeezestudio.core.session.interactive_subset.frontier_images` picks the count).
    ``items`` are experiments or sweep rows: anything with ``size_bytes`` and ``metric(key)``.
    """
    # here, not at the top: experiments brings numpy, which the CLI's argument parser does without
    from squeezestudio.core.session.experiments import above_chance, images_measured, pareto_frontier
    from squeezestudio.core.session.interactive_subset import same_images

    mx, my = plot_metric(x), plot_metric(y)
    points = [(mx.value(e), my.value(e)) if above_chance(e.metric("top1"), chance, images_measured(e))
              and (images is None or same_images(e, images)) else (None, None) for e in items]
    return pareto_frontier(points, x_smaller_better=mx.smaller_is_better, y_larger_better=not my.smaller_is_better)


def frontier_steps(xy: Sequence[tuple[float, float]], x_smaller_better: bool) -> tuple[list[float], list[float]]:
    """Vertices of the step line through frontier points sorted by increasing x.

    Between two frontier points the best reachable y is that of the point
    whose x is still good enough: the left one when smaller x is better (go
    across, then up or down), the right one when larger x is better (go up
    or down first, then across).
    """
    xs: list[float] = []
    ys: list[float] = []
    for i, (px, py) in enumerate(xy):
        if i:
            corner = (px, xy[i - 1][1]) if x_smaller_better else (xy[i - 1][0], py)
            xs.append(corner[0])
            ys.append(corner[1])
        xs.append(px)
        ys.append(py)
    return xs, ys
