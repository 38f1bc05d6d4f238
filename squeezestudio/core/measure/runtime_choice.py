"""Whether an evaluation runs in onnxruntime: decided from the model and the data, never from a clock.

onnxruntime and eager torch round differently (a loss differs in its 4th
digit, and a near-tie can flip a top-1), so the choice between them is part
of the result. It was made from the probe batch's wall time, which made
the same command give different numbers on a fast and a slow machine, or
on one machine under load. It is now made from the work left, counted in
multiply-accumulates of the model's convolutions and linear layers, and
from the export's size in parameters: the same model and data set choose
the same way everywhere.

The constants convert that work to the seconds the old rule weighed, at
the speeds measured on the 2-core machine the rule was tuned on. Only the
choice depends on them, not any number it produces.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from squeezestudio.core.model.inspection import layer_macs

TORCH_MACS_PER_S = 20e9
"""Eager torch on the CPU (2 cores): a MobileNetV2-shaped 224x224 model (0.3 GMAC/image) ran 100 images in
1.37 s, 22 GMAC/s, its threads spending 1 s of it in the kernel; ResNet-18 was near 60 GMAC/s."""

EXPORT_BASE_S = 0.15
EXPORT_S_PER_MPARAM = 0.02
"""The in-memory export and onnxruntime session together: about 0.16 s for a 4.5M-parameter MobileNetV2-shaped
network and 0.23 s for ResNet-18 (11.7M) here, from the benchmark's whole-call minus forward time."""

MIN_TORCH_S = 0.5
"""Below this much torch work left, no export is tried (the whole evaluation is already short)."""


class MacCounter:
    """Counts the multiply-accumulates per image of the convolutions and linear layers one forward pass runs.

    Each call is counted as :func:`~squeezestudio.core.model.inspection.layer_macs` counts it for the layer table.
    """

    def __init__(self) -> None:
        self.per_image = 0

    def hook(self, module: nn.Module, inputs: tuple, output: object) -> None:
        self.per_image += layer_macs(module, inputs, output) or 0


@contextmanager
def counting_macs(model: nn.Module) -> Iterator[MacCounter]:
    """Count the MACs of the forward passes run inside the block (hooks removed afterwards)."""
    counter = MacCounter()
    handles = [m.register_forward_hook(counter.hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def estimated_torch_s(macs_per_image: int, images: int) -> float:
    """Eager torch's time for ``images`` more images, at the nominal speed (:data:`TORCH_MACS_PER_S`)."""
    return macs_per_image * images / TORCH_MACS_PER_S


def estimated_export_s(module: nn.Module) -> float:
    """The in-memory export's time, from the number of parameters (nominal, as :data:`EXPORT_S_PER_MPARAM`)."""
    mparams = sum(p.numel() for p in module.parameters()) / 1e6
    return EXPORT_BASE_S + EXPORT_S_PER_MPARAM * mparams


def runtime_pays(module: nn.Module, macs_per_image: int, images_left: int) -> bool:
    """True when exporting ``module`` to run ``images_left`` more images in onnxruntime is worth it.

    The torch work left must be at least :data:`MIN_TORCH_S` and twice the
    export's cost (onnxruntime is usually 2-4x faster than eager torch, so
    the export is then repaid with room to spare).
    """
    torch_s = estimated_torch_s(macs_per_image, images_left)
    return torch_s >= MIN_TORCH_S and torch_s >= 2.0 * estimated_export_s(module)
