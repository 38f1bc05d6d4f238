"""Pooling, normalization and resizing with ONNX semantics, where torch's layers differ.

torch's pooling layers accept only symmetric padding no wider than half the
kernel and no dilation for averages; ONNX's Resize has coordinate modes
``F.interpolate`` lacks; ONNX's LRN centres even windows differently. These
functions compute the ONNX definitions directly (the converter still uses
torch's layers whenever they agree, so compression methods see them).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _pool_extents(size: int, k: int, s: int, d: int, begin: int, end: int, ceil_mode: bool) -> tuple[int, int]:
    """(output length, padding to add at the end so a plain window sweep yields it)."""
    span = (k - 1) * d + 1
    total = size + begin + end - span
    out = (-(-total // s) if ceil_mode else total // s) + 1
    if ceil_mode and (out - 1) * s >= size + begin:  # the last window would start in the end padding
        out -= 1
    needed = (out - 1) * s + span - (size + begin + end)
    return out, max(needed, 0)


def onnx_pool(kind: str, x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
              dilations: Sequence[int], ceil_mode: int = 0, count_include_pad: int = 0) -> torch.Tensor:
    """ONNX MaxPool / AveragePool with any padding, dilation and ceil mode, over 1 to 3 dimensions."""
    n = len(kernel)
    begins, ends = list(pads[:n]), list(pads[n:])
    extra = []
    for i in range(n):
        _, more = _pool_extents(int(x.shape[2 + i]), kernel[i], strides[i], dilations[i], begins[i], ends[i],
                                bool(ceil_mode))
        extra.append(more)
    torch_pads: list[int] = []
    for i in reversed(range(n)):
        torch_pads += [begins[i], ends[i] + extra[i]]
    if kind == "max":
        padded = F.pad(x, torch_pads, value=-math.inf) if x.is_floating_point() else \
            F.pad(x, torch_pads, value=int(torch.iinfo(x.dtype).min))
        return _MAX_POOL[n](padded, list(kernel), list(strides), 0, list(dilations))
    channels = x.shape[1]
    ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
    weight = torch.ones((channels, 1) + tuple(kernel), dtype=x.dtype)
    conv = _CONV[n]
    total = conv(F.pad(x, torch_pads), weight, None, list(strides), 0, list(dilations), channels)
    if count_include_pad:  # the padding counts, the extra ceil-mode overhang does not
        plain = [p for i in reversed(range(n)) for p in (begins[i], ends[i])]
        mask = F.pad(F.pad(ones, plain, value=1.0), [p for i in reversed(range(n)) for p in (0, extra[i])])
    else:
        mask = F.pad(ones, torch_pads)
    counts = conv(mask, weight[:1], None, list(strides), 0, list(dilations), 1)
    return total / counts


def onnx_lrn(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0) -> torch.Tensor:
    """ONNX LRN: ``x / (bias + alpha / size * sum of squares over a window of channels) ** beta``."""
    front, back = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = (x * x).reshape(x.shape[0], 1, x.shape[1], -1)
    window = F.avg_pool2d(F.pad(squares, [0, 0, front, back]), (size, 1), stride=1) * size
    return x / (bias + alpha / size * window.reshape(x.shape)) ** beta


def onnx_layer_norm(x: torch.Tensor, scale: torch.Tensor, bias: Optional[torch.Tensor], axis: int = -1,
                    epsilon: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX LayerNormalization: (Y, Mean, InvStdDev), statistics over the axes from ``axis`` on."""
    axis = axis + x.dim() if axis < 0 else axis
    dims = list(range(axis, x.dim()))
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = torch.mean(work, dim=dims, keepdim=True)
    centred = work - mean
    inv_std = torch.rsqrt(torch.mean(centred * centred, dim=dims, keepdim=True) + epsilon)
    y = (centred * inv_std).to(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return y, mean, inv_std


def _source_coordinates(mode: str, out_size: int, in_size: int, scale: float) -> torch.Tensor:
    """Where each output index samples the input; ``in_size * scale`` is ONNX's (fractional) output length."""
    x = torch.arange(out_size, dtype=torch.float64)
    length = in_size * scale
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return torch.zeros_like(x) if length == 1 else x * (in_size - 1) / (length - 1)
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length != 1 else torch.full_like(x, -0.5)
    if mode == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / length)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5  # half_pixel


def _nearest(coords: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "floor":
        return torch.floor(coords)
    if mode == "ceil":
        return torch.ceil(coords)
    if mode == "round_prefer_ceil":
        return torch.floor(coords + 0.5)
    return torch.ceil(coords - 0.5)  # round_prefer_floor


def onnx_resize(x: torch.Tensor, sizes: Optional[Sequence[int]], scales: Optional[Sequence[float]],
                mode: str = "nearest", coordinate_mode: str = "half_pixel",
                nearest_mode: str = "round_prefer_floor") -> torch.Tensor:
    """ONNX Resize (nearest or linear) to ``sizes`` or by ``scales`` (one per axis; both when the
    sizes were rounded from a kept aspect ratio), one axis at a time; source coordinates outside the input clamp to its edge, as ONNX's definition pads."""
    out = x
    for axis in range(x.dim()):
        in_size = int(out.shape[axis])
        if sizes is not None:
            size = int(sizes[axis])
            scale = float(scales[axis]) if scales is not None else (size / in_size if in_size else 1.0)
        else:
            scale = float(scales[axis])
            size = int(math.floor(in_size * scale))
        if size == in_size and scale == 1.0:
            continue
        coords = _source_coordinates(coordinate_mode, int(size), in_size, float(scale))
        if mode == "nearest":
            index = _nearest(coords, nearest_mode).clamp(0, in_size - 1).to(torch.int64)
            out = torch.index_select(out, axis, index)
            continue
        coords = coords.clamp(0, in_size - 1)
        low = torch.floor(coords).to(torch.int64)
        high = (low + 1).clamp(max=in_size - 1)
        weight_shape = [1] * out.dim()
        weight_shape[axis] = int(size)
        weight = (coords - low).to(out.dtype).reshape(weight_shape)
        a, b = torch.index_select(out, axis, low), torch.index_select(out, axis, high)
        out = a + (b - a) * weight
    return out


NN_FUNCTIONS = {
    f"squeezestudio.{fn.__name__}": fn
    for fn in (onnx_pool, onnx_lrn, onnx_layer_norm, onnx_resize)
}
