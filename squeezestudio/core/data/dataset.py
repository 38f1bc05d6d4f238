"""The preprocessed data set every evaluation and training loop reads.

Images are decoded and preprocessed once, so repeated evaluation (every point
on the trade-off plot) costs only the forward passes. A set that fits the
memory budget is one float tensor; a larger one stays on disk as uint8
(:class:`~squeezestudio.core.data.pixel_images.PixelImages`), indexed the same
way and converted to float one batch at a time, so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Union

import torch

from squeezestudio.core.model.handle import InputSpec

if TYPE_CHECKING:
    from squeezestudio.core.data.pixel_images import PixelImages


@dataclass(frozen=True)
class PreprocessSpec:
    """How a decoded image becomes a model input (the data stage's view of :class:`InputSpec`).

    ``resize``: None scales the image just enough to cover ``height x width``;
    an int scales the shorter side to that many pixels; ``(h, w)`` resizes to
    exactly that size. A center crop to ``height x width`` follows
    (``center_crop=False`` resizes straight to ``height x width``).
    ``channels`` 1 converts to grayscale, 3 to RGB (``grayscale`` makes the
    three channels gray). Pixels / 255 * ``pixel_scale``, then
    ``(x - mean) / std``; ``channel_order`` "bgr" swaps red and blue.
    """

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: Optional[Union[int, tuple[int, int]]] = None
    center_crop: bool = True
    pixel_scale: float = 1.0
    channel_order: str = "rgb"
    grayscale: bool = False

    @classmethod
    def from_input_spec(cls, spec: InputSpec) -> "PreprocessSpec":
        """The model's own preprocessing (overridable field by field with ``dataclasses.replace``)."""
        resize: Optional[Union[int, tuple[int, int]]] = (
            None if not spec.resize else int(spec.resize[0]) if len(spec.resize) == 1
            else (int(spec.resize[0]), int(spec.resize[1])))
        return cls(channels=spec.channels, height=spec.height, width=spec.width,
                   mean=tuple(spec.mean), std=tuple(spec.std), resize=resize,
                   pixel_scale=float(spec.pixel_scale), channel_order=spec.channel_order,
                   grayscale=bool(spec.grayscale))


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a data set, and why (shown to the user)."""

    path: str
    reason: str


@dataclass
class ImageDataset:
    """Preprocessed images ``(N, C, H, W)`` float32, labels ``(N,)`` int64 or None.

    ``images`` is a tensor, or for a set larger than the memory budget a
    :class:`PixelImages` view of the disk cache: slicing or indexing either
    gives float32 tensors. ``notices`` are sentences for the user about how
    the data was loaded (a cache folder that could not be written, a damaged
    cache file rebuilt).
    """

    images: "Union[torch.Tensor, PixelImages]"
    labels: Optional[torch.Tensor]
    class_names: list[str]
    name: str = "data"
    paths: Optional[list[str]] = None
    skipped: list[SkippedFile] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """Consecutive ``(images, labels)`` slices (views, no copies)."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.images[start:stop], None if self.labels is None else self.labels[start:stop]

    def subset(self, indices: torch.Tensor, name: Optional[str] = None) -> "ImageDataset":
        """The examples at ``indices`` (for calibration sets and quick evaluation); a disk-backed set stays on disk."""
        images = self.images[indices] if isinstance(self.images, torch.Tensor) else self.images.take(indices)
        return ImageDataset(
            images=images, labels=None if self.labels is None else self.labels[indices],
            class_names=list(self.class_names), name=name or self.name,
            paths=None if self.paths is None else [self.paths[int(i)] for i in indices],
            skipped=list(self.skipped), notices=list(self.notices))
