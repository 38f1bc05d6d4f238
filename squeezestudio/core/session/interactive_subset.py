"""Interactive points are measured on a fixed subset of the data; any point can be measured on all of it.

A slider move must give a point in about a second, and evaluating 50,000
images after every change does not. So the session measures interactive
points (and the original they are compared with) on the same fixed, seeded,
stratified subset as the CLI's ``--limit N``
(:func:`~squeezestudio.core.data.subsets.limited`): every such point saw the
same images, so they compare like with like. A point measured on all images
is a separate, labelled point; each experiment records in its metrics how
many images it saw (``images``) out of how many (``images_total``), so a
project file, the CSV and the plot can say which is which.

Everything else the window measures on the data (a budget search's final
point, a sensitivity scan, a cluster sweep, a comparison of two points) uses
the same subset, through :meth:`SessionSubset.interactive_data`, and its
points carry the same two counts (:func:`image_metrics`). Points measured on
other images (all of them, or an earlier subset size) stay on the plot but
are not compared with the rest: :func:`frontier_images` says which count the
Pareto frontier compares, and :func:`subset_summary` says so in words.

No torch at import: the window imports the session before its first paint.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from squeezestudio.core.errors import SqueezeStudioError

if TYPE_CHECKING:
    from squeezestudio.core.data.dataset import ImageDataset
    from squeezestudio.core.session.evented import FieldEvents
    from squeezestudio.core.session.experiments import ExperimentLog

DEFAULT_INTERACTIVE_LIMIT = 1000
"""Images an interactive point is measured on, by default (the GUI's setting starts here)."""

SUBSET_SEED = 0
"""The subset's seed: the same rule and seed as the CLI's ``--limit N`` (the same images for the same data)."""


def check_limit(limit: Optional[int]) -> Optional[int]:
    """``limit`` as the session keeps it: a positive number of images, or None for all of them."""
    if limit is None or limit == 0:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise SqueezeStudioError(f"the interactive subset must be a whole number of images (0 for all), "
                                 f"not {limit!r}")
    return limit


def subset_size(total: int, limit: Optional[int]) -> int:
    """How many of ``total`` images a point measured with ``limit`` (None: all) sees."""
    return total if limit is None else min(int(limit), total)


class SubsetCache:
    """The subset of the current data for one size, built once (its tensors are copied out of the data).

    Keeping the same object also keeps the session's reference predictions
    (cached per data object) valid from one point to the next.
    """

    def __init__(self) -> None:
        self._key: Any = None
        self._subset: Any = None

    def get(self, data: "ImageDataset", images: int) -> "ImageDataset":
        """``data`` cut to its fixed stratified subset of ``images`` images (``data`` itself if no smaller)."""
        if images >= len(data):
            return data
        if self._key is None or self._key[0] is not data or self._key[1] != images:
            from squeezestudio.core.data.subsets import limited  # lazy: torch (see the module's docstring)

            self._subset = limited(data, images, seed=SUBSET_SEED)
            self._key = (data, images)  # a plain attribute swap: safe from a worker thread
        return self._subset


def images_of(experiment: Any) -> Optional[int]:
    """How many images ``experiment`` was measured on; None for points that predate the count."""
    value = experiment.metric("images")
    return None if value is None else int(value)


def measured_on_all(experiment: Any) -> bool:
    """True when the point saw every image of its data set."""
    images, total = images_of(experiment), experiment.metric("images_total")
    return images is not None and total is not None and images >= int(total)


def same_images(experiment: Any, images: int) -> bool:
    """Whether ``experiment`` can stand for a point measured on ``images`` images (an unknown count can)."""
    seen = images_of(experiment)
    return seen is None or seen == images


def full_label(label: str, total: int) -> str:
    """The label of a point re-measured on the full data."""
    return f"{label} (all {total:,} images)"


def on_images(images: int, total: int, *, explain: bool = True) -> str:
    """``on all 60 images`` or ``on 20 of 60 images (a fixed stratified subset)`` (without the bracket: not ``explain``)."""
    if images >= total:
        return f"on all {total:,} images"
    return f"on {images:,} of {total:,} images" + (" (a fixed stratified subset)" if explain else "")


def image_metrics(data: Any, full: Any) -> dict[str, float]:
    """The two counts a point measured on ``data`` (a subset of ``full``, or ``full`` itself) carries."""
    return {"images": float(len(data)), "images_total": float(len(full))}


def measured_note(experiment: Any) -> str:
    """One line for a point's tooltip: which images it was measured on ("" when unknown)."""
    images, total = images_of(experiment), experiment.metric("images_total")
    if images is None or total is None:
        return ""
    return "measured " + on_images(images, int(total))


def frontier_images(experiments: Iterable[Any], current: Optional[int] = None) -> Optional[int]:
    """The image count whose points the Pareto frontier compares (None: no point says; all compared).

    ``current`` is how many images interactive points are measured on now;
    when no point was measured on that many yet (a project from an earlier
    subset size), the newest point's count, so the plot still has a frontier.
    """
    counts = [n for n in (images_of(e) for e in experiments) if n is not None]
    if current is not None and current in counts:
        return int(current)
    return counts[-1] if counts else None


def compared(experiments: Iterable[Any], images: Optional[int]) -> tuple[list[Any], list[Any]]:
    """``(compared, other)``: the points measured on ``images`` images (or not saying), and the rest."""
    items = list(experiments)
    return ([e for e in items if images is None or same_images(e, images)],
            [e for e in items if images is not None and not same_images(e, images)])


def subset_summary(experiments: Iterable[Any], current: Optional[int] = None) -> str:
    """The plot's note on the data: the images the compared points share, and the points on other images.

    "" when every point saw all the images (nothing to warn about) or none
    says. Points on other images are drawn hollow and are never on the
    frontier (those that saw every image are diamonds, as their tooltips say).
    """
    items = list(experiments)
    images = frontier_images(items, current)
    other = compared(items, images)[1]
    totals = [int(e.metric("images_total")) for e in items if e.metric("images_total") is not None]
    if images is None or not totals or (not other and images >= totals[-1]):
        return ""
    text = "measured " + on_images(images, totals[-1])
    if other:
        groups = Counter((int(images_of(e) or 0), int(e.metric("images_total") or 0)) for e in other)
        texts = [f"{count} on all {total:,}" if n >= total else f"{count} on {n:,} of {total:,}"
                 for (n, total), count in sorted(groups.items(), key=lambda group: -group[0][0])]
        text += " · hollow, not compared: " + ", ".join(texts)
    return text


def comparison_images(chosen: Sequence[Any], current: int) -> int:
    """The images two points are compared on: those both were measured on, else ``current``.

    Two points measured on all images compare on all of them (the numbers
    match the plot's); otherwise on the interactive subset.
    """
    counts = {images_of(e) for e in chosen}
    return int(counts.pop()) if len(counts) == 1 and None not in counts else int(current)


class SessionSubset:
    """The interactive-subset half of :class:`~squeezestudio.core.session.studio_session.StudioSession`.

    Expects ``data``, ``interactive_limit`` (an evented field), ``changed``,
    ``experiments`` and ``_subsets`` (a :class:`SubsetCache`) on the session
    it is mixed into. The experiment log is told the current count
    (``experiments.images``), so the plot compares the points measured on it.
    """

    data: Optional["ImageDataset"]
    interactive_limit: Optional[int]
    changed: "FieldEvents"
    experiments: "ExperimentLog"
    _subsets: SubsetCache

    def _follow_interactive_images(self) -> None:
        """Keep ``experiments.images`` equal to :meth:`interactive_images` (call once, from ``__init__``)."""
        self.changed.data.connect(self._images_changed)
        self.changed.interactive_limit.connect(self._images_changed)

    def _images_changed(self, _value: Any) -> None:
        self.experiments.set_images(self.interactive_images())

    def set_interactive_limit(self, limit: Optional[int]) -> None:
        """Measure interactive points on a fixed subset of ``limit`` images (0 or None: all of them)."""
        self.interactive_limit = check_limit(limit)

    def interactive_images(self) -> Optional[int]:
        """How many images an interactive point is measured on now (None without data)."""
        return None if self.data is None else subset_size(len(self.data), self.interactive_limit)

    def interactive_data(self, images: Optional[int] = None,
                         full: Optional["ImageDataset"] = None) -> "ImageDataset":
        """``full``'s (default: the session's data) fixed subset of ``images`` images (default: the interactive count).

        What every measurement the window makes on the data uses, so its
        numbers compare with the interactive points'. Safe from a worker
        thread: a job passes the data it read when it started, and the
        subset is built once per data set and size.
        """
        full = full if full is not None else self.data
        if full is None:
            raise SqueezeStudioError("open a data set (File > Open data) first")
        count = images if images is not None else subset_size(len(full), self.interactive_limit)
        return self._subsets.get(full, int(count))

    def current_original(self) -> Any:
        """The original model measured on the images interactive points are measured on now, if it was."""
        images = self.interactive_images()
        return next((e for e in self.experiments.list() if e.is_original
                     and (images is None or same_images(e, images))), None)
