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

No torch at import: the window imports the session before its first paint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

from squeezestudio.core.errors import SqueezeStudioError

if TYPE_CHECKING:
    from squeezestudio.core.data.dataset import ImageDataset

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


def measured_note(experiment: Any) -> str:
    """One line for a point's tooltip: which images it was measured on ("" when unknown)."""
    images, total = images_of(experiment), experiment.metric("images_total")
    if images is None or total is None:
        return ""
    if images >= int(total):
        return f"measured on all {int(total):,} images"
    return f"measured on {images:,} of {int(total):,} images (a fixed stratified subset)"


def subset_summary(experiments: Iterable[Any]) -> str:
    """The plot's note on the data: the subset the points share, and how many saw everything.

    "" when every point saw all the images (nothing to warn about) or none says.
    """
    items = list(experiments)
    partial = sorted({(images_of(e), int(e.metric("images_total"))) for e in items
                      if images_of(e) is not None and e.metric("images_total") is not None
                      and not measured_on_all(e)})
    if not partial:
        return ""
    texts = [f"{n:,} of {total:,}" for n, total in partial]
    text = f"measured on {' / '.join(texts)} images (a fixed stratified subset)"
    full = [e for e in items if measured_on_all(e) and not e.is_original]
    if full:  # the plot draws these as diamonds (an original measured on all images stays a star)
        text += f" · ◆: on all {int(full[0].metric('images_total')):,}"
    return text
