"""The "activations" method: fake-quantize the inputs of Conv/Linear layers to b-bit integers.

Weight methods shrink the file; this one shrinks nothing (its ranges add a
few bytes) but makes the model compute as an int8 deployment does, so the
accuracy of a point on the plot is that of the integer model rather than of
float activations. Each chosen layer's input gets a per-tensor affine grid
(unsigned, covering 0, like onnxruntime's QDQ activations), its range measured
on the state's calibration images (``minmax``, or ``percentile`` to ignore
rare outliers); see :mod:`.fake_quant` for the arithmetic.

It runs after every weight method (``ORDER_ACTIVATIONS``), so the ranges are
those of the model with its compressed weights. The change is recorded as one
architecture modification per ``apply`` (``{"method": "activations",
"inputs": {layer: [bits, scale, zero_point]}}``; a float32 scale written as
JSON reads back exactly), so loading a ``.sqz`` puts the same quantizers back
and the file's size includes their ranges. Retraining
needs no hooks: the quantizers' straight-through gradient trains the float
weights as the other methods' hooks keep them compressed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.fake_quant import (
    SUPPORTED, FakeQuantize, can_quantize_input, grid_for_range, measure_input_ranges, quantize_input)
from squeezestudio.core.compression.method import ORDER_ACTIVATIONS, CompressionMethod
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.compression.substitution.calibration import calibration_images
from squeezestudio.core.errors import ArchitectureMismatchError, CodecError, RecipeError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

CALIBRATION_CHOICES = ("minmax", "percentile")


@dataclass(frozen=True)
class ActivationConfig:
    """Options of activation quantization for one layer's input."""

    bits: int = param(8, minimum=2, maximum=16, help="Bits per activation value (8: what int8 kernels run).")
    calibration: str = param("minmax", choices=CALIBRATION_CHOICES,
                             help="Range from the smallest to the largest input seen, or from percentiles "
                                  "that leave out rare outliers.")
    percentile: float = param(99.99, minimum=90.0, maximum=100.0,
                              help="For percentile calibration: the share of input values (in %) kept "
                                   "inside the range at each end.")


class ActivationQuantization(CompressionMethod):
    """Built-in method ``activations``."""

    name = "activations"
    label = "Activation quantization (int8)"
    description = ("Rounds each layer's input to b-bit integers with a range measured on calibration images, "
                   "so the model is evaluated and retrained as an int8 deployment computes.")
    order = ORDER_ACTIVATIONS
    config_class = ActivationConfig
    layer_types = SUPPORTED
    needs_calibration = True
    changes_weights = False
    paper = "Jacob et al., Quantization and Training of Neural Networks for Integer-Arithmetic-Only Inference, CVPR 2018"

    def applies_to(self, module: nn.Module) -> bool:
        return can_quantize_input(module)

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        """Measure every chosen layer's input range in one pass, then put its quantizer in front of it."""
        if not layer_configs:
            return
        if state.calibration is None:
            raise RecipeError("activation quantization needs calibration images to measure its ranges; "
                              "open a data set (or pass calibration images) first")
        images = calibration_images(state.calibration)
        assert images is not None
        configs = {layer: self.config_for(layer, raw) for layer, raw in layer_configs.items()}
        for layer in configs:
            if not can_quantize_input(state.layer(layer)):
                raise RecipeError(f"activations on {layer}: it applies to plain Conv and Linear layers, "
                                  f"not to a {type(state.layer(layer)).__name__}")
        report(progress, 0.0, f"measuring activation ranges on {images.shape[0]} images")
        percentiles = {layer: c.percentile for layer, c in configs.items() if c.calibration == "percentile"}
        ranges = measure_input_ranges(state.module, list(configs), images.to(_device(state.module)),
                                      percentiles=percentiles, cancel=cancel)
        inputs: dict[str, list] = {}
        for i, (layer, cfg) in enumerate(configs.items()):
            check(cancel)
            scale, zero = grid_for_range(*ranges[layer], cfg.bits)
            quantize_input(state.layer(layer), FakeQuantize(cfg.bits, scale, zero))
            inputs[layer] = [cfg.bits, scale, int(zero)]
            report(progress, (i + 1) / len(configs), f"quantized the input of {layer}")
        state.record_modification({"method": self.name, "inputs": inputs})
        bits = sorted({c.bits for c in configs.values()})
        state.log.append(f"activations: {len(configs)} layer input(s) at {'/'.join(map(str, bits))} bits, "
                         f"ranges from {images.shape[0]} calibration images")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Put back the recorded quantizers, each with its stored grid."""
        inputs = modification.get("inputs")
        if not isinstance(inputs, dict):
            raise CodecError("an activation quantization recorded in the file is incomplete")
        for layer, grid in inputs.items():
            bits, scale, zero = _checked_grid(layer, grid)
            try:
                target = module.get_submodule(str(layer))
            except AttributeError:
                target = None
            if target is None or not can_quantize_input(target):
                raise ArchitectureMismatchError(f"layer {layer!r} is not a Conv or Linear layer whose input "
                                                "the file's activation quantization can be put on")
            quantize_input(target, FakeQuantize(bits, scale, zero))
        return module


def _checked_grid(layer: str, grid: Any) -> tuple[int, float, float]:
    """``(bits, scale, zero_point)`` of a stored grid, or :class:`CodecError` when it is not one."""
    ok = isinstance(grid, list) and len(grid) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid)
    if ok:
        bits, scale, zero = int(grid[0]), float(grid[1]), float(grid[2])
        ok = grid[0] == bits and 2 <= bits <= 16 and math.isfinite(scale) and scale > 0 \
            and zero.is_integer() and 0 <= zero <= 2 ** bits - 1
    if not ok:
        raise CodecError(f"the activation grid recorded in the file for {layer!r} is not "
                         "[bits 2-16, a positive scale, an integer zero point in range]")
    return bits, scale, zero


def _device(module: nn.Module):
    first = next(module.parameters(), None)
    return "cpu" if first is None else first.device
