"""Results of trying recipes: one :class:`Experiment` per point on the trade-off plot.

Every evaluated recipe becomes an Experiment holding the recipe (as a plain
dict), the exact byte length of its .sqz file and the measured metrics. The
:class:`ExperimentLog` keeps them in order, tells listeners when it changes
(the GUI redraws the plot from it) and saves to JSON/CSV, so a project file can
bring every point back. :func:`pareto_frontier` picks the points worth keeping.
"""

from __future__ import annotations

import csv
import math
import io
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from squeezestudio.core.atomic_write import PathLike, atomic_write_bytes
from squeezestudio.core.compression.config import config_params
from squeezestudio.core.errors import SqueezeStudioError

if TYPE_CHECKING:  # the registry imports torch and every method; this module is needed before them
    from squeezestudio.core.compression.registry import MethodRegistry

METRIC_KEYS = ("top1", "top5", "agreement", "loss", "latency", "images", "images_total")
"""Metric names an experiment may carry (latency is milliseconds per image; images: how many it was measured on)."""

KEEP_ARTIFACTS = 4
"""How many recent experiments keep their in-memory compressed model (memory bound)."""


def new_experiment_id() -> str:
    """A short unique id (stable across save/open, unlike list positions)."""
    return uuid.uuid4().hex[:12]


@dataclass
class Experiment:
    """One evaluated recipe: what was done, how big the file is, how well it does.

    ``size_bytes`` is the exact length of the encoded .sqz file. ``compressed``
    and ``size_report`` are in-memory artifacts (the CompressedModel and its
    SizeReport) kept for export and the layer view; they are never saved.
    """

    id: str
    recipe: dict[str, Any]
    label: str
    size_bytes: int
    metrics: dict[str, Optional[float]] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    is_original: bool = False
    compressed: Any = field(default=None, repr=False, compare=False)
    size_report: Any = field(default=None, repr=False, compare=False)

    def metric(self, name: str) -> Optional[float]:
        """A metric's value, or None when it was not measured (e.g. no labels)."""
        value = self.metrics.get(name)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "recipe": self.recipe, "label": self.label,
                "size_bytes": int(self.size_bytes), "metrics": dict(self.metrics),
                "timestamp": float(self.timestamp), "is_original": bool(self.is_original)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Experiment":
        """Rebuild from :meth:`to_dict`; a malformed entry is a SqueezeStudioError."""
        try:
            metrics = {str(k): (None if v is None else float(v)) for k, v in dict(d.get("metrics", {})).items()}
            return cls(id=str(d["id"]), recipe=dict(d.get("recipe") or {}), label=str(d.get("label", "")),
                       size_bytes=int(d["size_bytes"]), metrics=metrics,
                       timestamp=float(d.get("timestamp", 0.0)), is_original=bool(d.get("is_original", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise SqueezeStudioError(f"an experiment entry is malformed ({exc}); the project file may be damaged") from None


class ExperimentLog:
    """The ordered list of experiments of a session, with change callbacks.

    Listeners in ``on_change`` are called with no arguments after every change;
    they are plain callables so the core stays free of any GUI toolkit.
    """

    def __init__(self, experiments: Sequence[Experiment] = (), chance: Optional[float] = None) -> None:
        self._items: list[Experiment] = list(experiments)
        self.on_change: list[Callable[[], None]] = []
        self.chance = chance  # top-1 of guessing (1 / classes): points at or below it are never Pareto-optimal
        self.images: Optional[int] = None  # images interactive points are measured on now (the session sets it)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Experiment]:
        return iter(list(self._items))

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()

    def append(self, experiment: Experiment) -> Experiment:
        """Add an experiment (ids must be unique) and drop old in-memory artifacts."""
        if self.find(experiment.id) is not None:
            raise SqueezeStudioError(f"an experiment with id {experiment.id} is already in the log")
        self._items.append(experiment)
        recent = [e for e in self._items if not e.is_original][-KEEP_ARTIFACTS:]
        keep = {id(e) for e in recent}
        for e in self._items:
            if not e.is_original and id(e) not in keep:
                e.compressed = None
                e.size_report = None
        self._changed()
        return experiment

    def set_images(self, images: Optional[int]) -> None:
        """Say how many images points are measured on now; listeners redraw (the frontier compares those)."""
        if images != self.images:
            self.images = images
            self._changed()

    def list(self) -> list[Experiment]:
        return list(self._items)

    def find(self, experiment_id: str) -> Optional[Experiment]:
        for e in self._items:
            if e.id == experiment_id:
                return e
        return None

    def original(self) -> Optional[Experiment]:
        """The uncompressed model's experiment, if it was measured."""
        return next((e for e in self._items if e.is_original), None)

    def clear(self) -> None:
        self._items.clear()
        self._changed()

    def replace_all(self, experiments: Sequence[Experiment]) -> None:
        """Swap the whole list (opening a project) with one change notification."""
        self._items = list(experiments)
        self._changed()

    def pareto_ids(self, metric: str = "top1") -> list[str]:
        """Ids of the non-dominated experiments for ``metric``, smallest first."""
        items = [e for e in self._items if e.metric(metric) is not None]
        idx = pareto_frontier(frontier_points(items, metric, self.chance))
        return [items[i].id for i in idx]

    def to_dict(self) -> dict[str, Any]:
        return {"experiments": [e.to_dict() for e in self._items]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentLog":
        entries = d.get("experiments", []) if isinstance(d, dict) else None
        if not isinstance(entries, list):
            raise SqueezeStudioError("the experiment list is malformed; the project file may be damaged")
        return cls([Experiment.from_dict(e) for e in entries])

    def to_csv_text(self) -> str:
        """One row per experiment: id, label, size, every metric, original flag, time."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", "label", "size_bytes", *METRIC_KEYS, "is_original", "timestamp"])
        for e in self._items:
            values = ["" if e.metric(k) is None else repr(e.metric(k)) for k in METRIC_KEYS]
            writer.writerow([e.id, e.label, e.size_bytes, *values, int(e.is_original), f"{e.timestamp:.3f}"])
        return buffer.getvalue()

    def to_csv(self, path: PathLike) -> int:
        """Write :meth:`to_csv_text` atomically; returns bytes written."""
        return atomic_write_bytes(path, self.to_csv_text().encode("utf-8"))


def recipe_summary(recipe: dict[str, Any], defaults: Mapping[str, Mapping[str, Any]]) -> str:
    """A short one-line description of a recipe dict for labels and tooltips.

    Each method shows its first knob (its main one) plus every knob that
    differs from the defaults (``defaults`` maps method -> {knob: default},
    see :func:`method_defaults`; a method missing there shows all its knobs).
    """
    stages = recipe.get("stages")
    if isinstance(stages, list) and stages:  # a staged recipe: its stages in order, with their retraining
        texts = []
        for stage in stages:
            stage = stage if isinstance(stage, dict) else {}
            epochs = (stage.get("finetune") or {}).get("epochs")
            texts.append(recipe_summary(stage, defaults) + (f" + retrain {epochs} ep" if epochs else ""))
        return " → ".join(texts)
    parts: list[str] = []
    methods = recipe.get("methods")
    if isinstance(methods, dict):
        for method, config in methods.items():
            base = defaults.get(method, {})
            config = config or {}
            first = next(iter(config), None)
            changed = {k: v for k, v in config.items() if k == first or k not in base or base[k] != v}
            knobs = ", ".join(f"{k}={_short(v)}" for k, v in changed.items())
            parts.append(f"{method}({knobs})" if knobs else str(method))
    layers = recipe.get("layers")
    if isinstance(layers, dict) and layers:
        parts.append(f"{len(layers)} layer override(s)")
    return "; ".join(parts) if parts else "no compression"


def method_defaults(registry: MethodRegistry) -> dict[str, dict[str, Any]]:
    """Each registered method's default knob values (what :func:`recipe_summary` leaves out)."""
    return {m.name: {p.name: p.default for p in config_params(m.config_class)} for m in registry.methods()}


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def above_chance(top1: Optional[float], chance: Optional[float], n: Optional[float] = None) -> bool:
    """False for a model no better than guessing; True when unknown.

    With ``n`` (the images it was measured on) "no better than guessing" allows
    for sampling noise: a top-1 within two standard errors of ``chance`` (a
    binomial at chance over n images: 10.3% of 359 digits is 37 hits, where
    guessing gives 36 +- 6) is guessing too. Without ``n``, only at or below chance.
    """
    if top1 is None or chance is None:
        return True
    margin = 2.0 * math.sqrt(chance * (1.0 - chance) / n) if n else 0.0
    return top1 > chance + margin + 1e-9


def frontier_points(items: Sequence[Any], metric: str, chance: Optional[float]) -> list[tuple[float, Optional[float]]]:
    """``(size, metric)`` per experiment, the metric None (never on the frontier) for points at chance."""
    return [(e.size_bytes, e.metric(metric) if above_chance(e.metric("top1"), chance, images_measured(e)) else None)
            for e in items]


def images_measured(experiment: Any) -> Optional[float]:
    """How many images a point was measured on: ``images`` (the GUI's points) or ``n`` (sweep rows)."""
    value = experiment.metric("images")
    return value if value is not None else experiment.metric("n")


def format_bytes(n: float) -> str:
    """A byte count for people: ``950 B``, ``12.3 KB``, ``4.56 MB`` (powers of 1000)."""
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def pareto_frontier(points: Sequence[tuple[Optional[float], Optional[float]]], *,
                   x_smaller_better: bool = True, y_larger_better: bool = True) -> list[int]:
    """Indices of the non-dominated points, ordered by increasing x.

    By default a point is (size, accuracy): smaller x and larger y are
    better. ``x_smaller_better``/``y_larger_better`` turn either direction
    round, so any pair works (accuracy against latency: both flags as they
    are for latency on x; size on y: ``y_larger_better=False``). A point is
    dominated when another is at least as good in both and strictly better in
    one. Points with a None/NaN coordinate are never on the frontier; of exact
    duplicates only the first is returned. Sorting once and a running maximum
    make it O(n log n) with no Python loop over the points.
    """
    if len(points) == 0:
        return []
    arr = np.array([(np.nan if x is None else float(x), np.nan if y is None else float(y)) for x, y in points],
                   dtype=np.float64)
    x = arr[:, 0] if x_smaller_better else -arr[:, 0]
    y = arr[:, 1] if y_larger_better else -arr[:, 1]
    valid = ~np.isnan(x) & ~np.isnan(y)
    x, y = np.where(valid, x, np.inf), np.where(valid, y, -np.inf)
    # Best x first; for equal x the best y first; then original order.
    order = np.lexsort((np.arange(len(x)), -y, x))
    sorted_y = y[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(sorted_y)[:-1]))
    keep = (sorted_y > best_before) & valid[order]
    front = [int(i) for i in order[keep]]
    return front if x_smaller_better else front[::-1]
