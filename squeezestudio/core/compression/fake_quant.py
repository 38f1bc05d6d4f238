"""Fake-quantized activations: the modules, their grid, and the ranges measured on images.

A :class:`FakeQuantize` rounds a tensor onto an affine per-tensor grid of
``2**bits`` levels and back to float, with the arithmetic of ONNX
``QuantizeLinear``/``DequantizeLinear`` (what onnxruntime runs in an int8
QDQ model): ``q = clamp(round_half_even(x / scale) + zero_point, 0, 2**bits - 1)``
and ``y = (q - zero_point) * scale``, all in float32. Its ``scale`` and
``zero_point`` are non-persistent buffers: they move with the module (device,
deep copies) but stay out of the state dict, because the ``.sqz`` keeps them
in the layer's modification record instead, where three numbers cost about 50
bytes rather than the ~150 of two raw tensor entries.

The quantizer sits on a layer's *input*, as onnxruntime's QDQ export puts a
``QuantizeLinear -> DequantizeLinear`` pair in front of every Conv/Gemm. To
keep the layer's parameter names (``fc1.weight`` stays ``fc1.weight``, so
weight encodings and the codec are untouched) the layer is not wrapped: its
class becomes a subclass of its own (:class:`QuantizedInputConv2d` for a
``Conv2d``...) whose ``forward`` quantizes the input first, and the quantizer
is its child ``input_quant``.

While training, the gradient passes straight through inside the grid's range
and is zero outside it (the clipped straight-through estimator of Jacob et
al., 2018), so retraining learns weights that suit the quantized activations.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
from torch import nn

from squeezestudio.core.errors import RecipeError
from squeezestudio.core.progress import CancelToken, check

HISTOGRAM_BINS = 2048


class FakeQuantize(nn.Module):
    """Per-tensor affine fake quantization with fixed ``scale``/``zero_point`` buffers."""

    def __init__(self, bits: int = 8, scale: float = 1.0, zero_point: float = 0.0) -> None:
        super().__init__()
        self.bits = int(bits)
        self.qmax = float(2 ** self.bits - 1)
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float32), persistent=False)
        self.register_buffer("zero_point", torch.tensor(float(zero_point), dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = self.scale, self.zero_point
        q = torch.clamp(torch.round(x / scale) + zero, 0.0, self.qmax)
        y = (q - zero) * scale
        if not (self.training and torch.is_grad_enabled() and x.requires_grad):
            return y
        inside = (x >= (0.0 - zero) * scale) & (x <= (self.qmax - zero) * scale)
        return y.detach() + (x - x.detach()) * inside  # the value of y, the gradient of x inside the range

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={float(self.scale):.6g}, zero_point={int(self.zero_point)}"


def grid_for_range(low: float, high: float, bits: int) -> tuple[float, float]:
    """``(scale, zero_point)`` of the unsigned ``bits``-bit grid covering [low, high] and 0.

    As onnxruntime computes it for activations: the range is widened to hold
    0 (so a zero, e.g. padding, stays exactly zero), ``scale`` is the range over
    the number of steps (1 for an empty range), and the zero point the rounded
    level of 0.
    """
    qmax = 2 ** int(bits) - 1
    low32 = torch.tensor(min(low, 0.0), dtype=torch.float32)
    high32 = torch.tensor(max(high, 0.0), dtype=torch.float32)
    scale = (high32 - low32) / float(qmax)
    if not torch.isfinite(scale) or float(scale) <= 0.0:
        scale = torch.tensor(1.0, dtype=torch.float32)
    zero = torch.clamp(torch.round(0.0 - low32 / scale), 0.0, float(qmax))
    return float(scale), float(zero)


class _InputQuantized:
    """Mixin: quantize the input with ``self.input_quant``, then run the layer itself."""

    input_quant: FakeQuantize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.input_quant(x))  # type: ignore[misc]


class QuantizedInputConv1d(_InputQuantized, nn.Conv1d):
    """A ``Conv1d`` whose input is fake-quantized."""


class QuantizedInputConv2d(_InputQuantized, nn.Conv2d):
    """A ``Conv2d`` whose input is fake-quantized."""


class QuantizedInputLinear(_InputQuantized, nn.Linear):
    """A ``Linear`` whose input is fake-quantized."""


QUANTIZED_CLASS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: QuantizedInputConv1d, nn.Conv2d: QuantizedInputConv2d, nn.Linear: QuantizedInputLinear}
SUPPORTED = tuple(QUANTIZED_CLASS)


def can_quantize_input(module: nn.Module) -> bool:
    """True for a plain Conv1d/Conv2d/Linear, or one whose input is already quantized."""
    return type(module) in QUANTIZED_CLASS or type(module) in QUANTIZED_CLASS.values()


def quantize_input(module: nn.Module, quantizer: FakeQuantize) -> nn.Module:
    """Make ``module`` quantize its input with ``quantizer``, in place (an earlier quantizer is replaced)."""
    if type(module) in QUANTIZED_CLASS:
        module.__class__ = QUANTIZED_CLASS[type(module)]
    elif type(module) not in QUANTIZED_CLASS.values():
        raise RecipeError(f"activation quantization applies to plain Conv and Linear layers, "
                          f"not to a {type(module).__name__}")
    ref = next((t for t in module.parameters()), None)
    module.input_quant = quantizer if ref is None else quantizer.to(ref.device)
    return module


def input_quantizers(module: nn.Module) -> dict[str, FakeQuantize]:
    """``{layer: quantizer}`` of every layer of ``module`` whose input is fake-quantized."""
    return {name: m.input_quant for name, m in module.named_modules()
            if type(m) in QUANTIZED_CLASS.values() and isinstance(getattr(m, "input_quant", None), FakeQuantize)}


def without_input_quantizers(module: nn.Module) -> nn.Module:
    """``module`` itself when nothing is fake-quantized, else a deep copy with plain layers again.

    What a float export writes: the quantizers simulate an int8 deployment,
    which the int8 export realises with the same grids (as
    ``QuantizeLinear``/``DequantizeLinear`` in front of each layer) rather
    than as float operations.
    """
    if not input_quantizers(module):
        return module
    plain = copy.deepcopy(module)
    back = {quantized: base for base, quantized in QUANTIZED_CLASS.items()}
    for _, m in plain.named_modules():
        if type(m) in back:
            del m._modules["input_quant"]
            m.__class__ = back[type(m)]
    return plain


@torch.no_grad()
def measure_input_ranges(model: nn.Module, layers: list[str], images: torch.Tensor, *,
                         percentiles: Optional[dict[str, float]] = None, batch_size: int = 64,
                         cancel: Optional[CancelToken] = None) -> dict[str, tuple[float, float]]:
    """``{layer: (low, high)}`` of each layer's input over ``images`` (the model in eval mode).

    A layer without an entry in ``percentiles`` gets the plain minimum and
    maximum. One with ``p`` gets the ``100 - p`` and ``p`` percentiles, read
    from a histogram of ``HISTOGRAM_BINS`` bins over [min, max] filled in a
    second pass (so memory does not grow with the number of images); the
    value returned is the bin edge at or beyond the percentile, never inside
    the range it cuts.
    """
    percentiles = percentiles or {}
    lows = {name: float("inf") for name in layers}
    highs = {name: float("-inf") for name in layers}
    def extremes(name: str, x: torch.Tensor) -> None:
        lows[name] = min(lows[name], float(x.min()))
        highs[name] = max(highs[name], float(x.max()))

    _run_hooked(model, layers, images, batch_size, cancel, extremes)
    missing = [name for name in layers if lows[name] > highs[name]]
    if missing:
        raise RecipeError(f"layer {missing[0]!r} did not run on the calibration images, so its input range "
                          "is unknown")
    ranges = {name: (lows[name], highs[name]) for name in layers}
    wanted = [name for name in layers if name in percentiles and highs[name] > lows[name]]
    if wanted:
        hists = {name: torch.zeros(HISTOGRAM_BINS, dtype=torch.float64) for name in wanted}
        def histogram(name: str, x: torch.Tensor) -> None:
            hists[name].add_(torch.histc(x.double().reshape(-1), HISTOGRAM_BINS, lows[name], highs[name]))

        _run_hooked(model, wanted, images, batch_size, cancel, histogram)
        for name in wanted:
            ranges[name] = _percentile_range(hists[name], lows[name], highs[name], percentiles[name])
    return ranges


def _percentile_range(hist: torch.Tensor, low: float, high: float, p: float) -> tuple[float, float]:
    cdf = torch.cumsum(hist, 0) / max(float(hist.sum()), 1.0)
    tail = (100.0 - p) / 100.0
    width = (high - low) / HISTOGRAM_BINS
    first = int(torch.searchsorted(cdf, torch.tensor(tail, dtype=torch.float64), right=True))
    last = int(torch.searchsorted(cdf, torch.tensor(1.0 - tail, dtype=torch.float64)))
    return low + first * width if tail > 0 else low, min(high, low + (last + 1) * width)


def _run_hooked(model: nn.Module, layers: list[str], images: torch.Tensor, batch_size: int,
                cancel: Optional[CancelToken], seen: Callable[[str, torch.Tensor], None]) -> None:
    """Run ``model`` over ``images`` calling ``seen(layer, input)`` before each of ``layers`` runs."""
    def hook_for(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:  # returns None: the input goes on unchanged
            seen(name, args[0].detach().float())
        return hook

    handles = [model.get_submodule(name).register_forward_pre_hook(hook_for(name)) for name in layers]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, images.shape[0], batch_size):
            check(cancel)
            model(images[start:start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
