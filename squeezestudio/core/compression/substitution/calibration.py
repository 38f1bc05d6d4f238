"""Capture what one layer sees and produces on calibration images, with forward hooks.

The forward pass stops right after the layer (a private exception raised by
the hook), so capturing an early layer does not pay for the rest of the
network. The number of images kept is capped so the captured tensors stay
under a memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.substitution.module_surgery import get_module
from squeezestudio.core.errors import DataError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

DEFAULT_MAX_IMAGES = 256
DEFAULT_MAX_ELEMENTS = 16_000_000  # per captured tensor: 64 MB of float32


class _StopForward(Exception):
    """Raised by the hook once the layer has run."""


@dataclass
class LayerIO:
    """A layer's inputs ``(N, C, H, W)`` and outputs on the same calibration images."""

    inputs: Optional[torch.Tensor]
    outputs: Optional[torch.Tensor]


def calibration_images(source: Any) -> Optional[torch.Tensor]:
    """A float NCHW tensor from a tensor or an ``ImageDataset`` (None stays None)."""
    if source is None:
        return None
    images = getattr(source, "images", source)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise DataError("calibration data must be a non-empty batch of images shaped N,C,H,W")
    return images.float()


@torch.no_grad()
def capture_layer_io(model: nn.Module, layer: str, images: torch.Tensor, *,
                     want_inputs: bool = True, want_outputs: bool = True,
                     batch_size: int = 64, max_images: int = DEFAULT_MAX_IMAGES,
                     max_elements: int = DEFAULT_MAX_ELEMENTS,
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> LayerIO:
    """Run ``model`` (in eval mode) on ``images`` and keep ``layer``'s input/output.

    At most ``max_images`` images are used, fewer if one captured tensor would
    exceed ``max_elements`` values.
    """
    target = get_module(model, layer)
    images = images[:max_images]
    batches_in: list[torch.Tensor] = []
    batches_out: list[torch.Tensor] = []
    limit = len(images)

    def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if want_inputs:
            batches_in.append(args[0].detach().clone())
        if want_outputs:
            batches_out.append(output.detach().clone())
        raise _StopForward

    was_training = model.training
    model.eval()
    handle = target.register_forward_hook(hook)
    try:
        start = 0
        while start < limit:
            check(cancel)
            try:
                model(images[start:start + batch_size])
            except _StopForward:
                pass
            if start == 0:
                per_image = max(_numel_per_image(batches_in), _numel_per_image(batches_out), 1)
                limit = max(1, min(limit, max_elements // per_image))
            start += batch_size
            report(progress, min(start, limit) / limit, f"capturing {layer}")
    finally:
        handle.remove()
        model.train(was_training)
    if (want_inputs and not batches_in) or (want_outputs and not batches_out):
        raise DataError(f"layer {layer!r} did not run on the calibration images")
    inputs = torch.cat(batches_in)[:limit] if want_inputs else None
    outputs = torch.cat(batches_out)[:limit] if want_outputs else None
    return LayerIO(inputs=inputs, outputs=outputs)


def _numel_per_image(batches: list[torch.Tensor]) -> int:
    if not batches:
        return 0
    first = batches[0]
    return first[0].numel() if first.shape[0] else 0
