"""Elementwise, variadic, reduction and splitting ops with ONNX semantics.

Like :mod:`.onnx_functions`, these are small pure functions of tensors and
Python literals that the ONNX converter emits by name and the allow-list
exposes, so a rebuilt graph runs exactly what the converter described.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

_VARIADIC = {"sum": torch.add, "max": torch.maximum, "min": torch.minimum}


def onnx_variadic(kind: str, *tensors: torch.Tensor) -> torch.Tensor:
    """ONNX Sum / Mean / Max / Min over any number of broadcasting inputs."""
    if kind == "mean":
        return functools.reduce(torch.add, tensors) / len(tensors)
    return functools.reduce(_VARIADIC[kind], tensors)


def onnx_expand(x: torch.Tensor, shape: Union[Sequence[int], torch.Tensor]) -> torch.Tensor:
    """ONNX Expand: broadcast in both directions (a 1 in ``shape`` keeps the input's size)."""
    dims = [int(v) for v in shape.reshape(-1).tolist()] if isinstance(shape, torch.Tensor) else list(shape)
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(dims)))


def onnx_pow(base: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """ONNX Pow: the result has the base's type (an integer base with a float exponent truncates)."""
    return torch.pow(base, exponent).to(base.dtype)


def onnx_selu(x: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """ONNX Selu with its own ``alpha`` and ``gamma``."""
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


def onnx_prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """ONNX PRelu with a slope that broadcasts to ``x`` (when it is not one value per channel)."""
    return torch.where(x < 0, x * slope, x)


def onnx_gemm(a: torch.Tensor, b: torch.Tensor, c: Optional[torch.Tensor], alpha: float, beta: float,
              trans_a: int, trans_b: int) -> torch.Tensor:
    """ONNX Gemm in general form: ``alpha * A' @ B' + beta * C``."""
    out = torch.matmul(a.t() if trans_a else a, b.t() if trans_b else b)
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return out


_IDENTITY = {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf, "mean": math.nan,
             "l1": 0.0, "l2": 0.0, "sum_square": 0.0, "log_sum": -math.inf, "log_sum_exp": -math.inf}


def _reduce_once(kind: str, x: torch.Tensor, dims: list[int], keep: bool) -> torch.Tensor:
    if kind == "sum":
        return torch.sum(x, dim=dims, keepdim=keep)
    if kind == "mean":
        return torch.mean(x, dim=dims, keepdim=keep)
    if kind == "max":
        return torch.amax(x, dim=dims, keepdim=keep)
    if kind == "min":
        return torch.amin(x, dim=dims, keepdim=keep)
    if kind == "prod":
        for d in sorted(dims, reverse=True):
            x = torch.prod(x, dim=d, keepdim=keep)
        return x
    if kind == "l1":
        return torch.sum(torch.abs(x), dim=dims, keepdim=keep)
    if kind == "l2":
        return torch.sqrt(torch.sum(x * x, dim=dims, keepdim=keep))
    if kind == "sum_square":
        return torch.sum(x * x, dim=dims, keepdim=keep)
    if kind == "log_sum":
        return torch.log(torch.sum(x, dim=dims, keepdim=keep))
    return torch.logsumexp(x, dim=dims, keepdim=keep)


def onnx_reduce(kind: str, x: torch.Tensor, axes: Optional[Union[Sequence[int], torch.Tensor]] = None,
                keepdims: int = 1, noop_with_empty_axes: int = 0) -> torch.Tensor:
    """ONNX Reduce* over ``axes`` (all axes when none are given, unless ``noop_with_empty_axes``).

    Reducing an empty set gives the operation's identity (``-inf`` for max), as ONNX defines.
    """
    listed = [int(a) for a in axes.reshape(-1).tolist()] if isinstance(axes, torch.Tensor) else list(axes or [])
    if not listed:
        if noop_with_empty_axes:
            return x
        listed = list(range(x.dim()))
    dims = sorted({a + x.dim() if a < 0 else a for a in listed})
    keep = bool(keepdims)
    if x.dim() == 0:
        return x.clone()
    if any(x.shape[d] == 0 for d in dims):
        shape = [1 if d in dims else s for d, s in enumerate(x.shape)] if keep else \
            [s for d, s in enumerate(x.shape) if d not in dims]
        identity = (kind == "min") if x.dtype == torch.bool else _IDENTITY[kind]
        return torch.full(shape, identity, dtype=x.dtype)
    if kind in ("sum", "max", "min", "prod") and not x.is_floating_point():
        return _reduce_once(kind, x, dims, keep)
    return _reduce_once(kind, x, dims, keep).to(x.dtype)


def onnx_split(x: torch.Tensor, axis: int, sizes: Optional[Sequence[int]], count: int) -> tuple[torch.Tensor, ...]:
    """ONNX Split into ``sizes`` along ``axis``, or into ``count`` parts (the last one smaller)."""
    if sizes is None:
        length = x.shape[axis]
        chunk = -(-length // count)
        sizes = [chunk] * (count - 1) + [length - chunk * (count - 1)]
    return tuple(torch.split(x, list(sizes), dim=axis))


def onnx_dropout_mask(x: torch.Tensor) -> torch.Tensor:
    """Dropout's mask output at inference: every element kept."""
    return torch.ones_like(x, dtype=torch.bool)


def onnx_class_scores(x: torch.Tensor) -> torch.Tensor:
    """A classifier's [N, C, 1, 1] output (a convolutional head) as [N, C]; other shapes unchanged."""
    if x.dim() == 4 and x.shape[2] == 1 and x.shape[3] == 1:
        return torch.flatten(x, 1)
    return x


def onnx_softplus(x: torch.Tensor) -> torch.Tensor:
    """ONNX Softplus ``log(1 + exp(x))`` without torch's linear cut-off."""
    return torch.logaddexp(x, torch.zeros_like(x))


def onnx_gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """ONNX Gelu (``approximate`` is ``none`` or ``tanh``)."""
    return F.gelu(x, approximate=approximate)


def onnx_constant_of_shape(shape: Union[Sequence[int], torch.Tensor], value: Union[int, float, bool],
                           dtype: torch.dtype) -> torch.Tensor:
    """ONNX ConstantOfShape for a shape computed at run time (e.g. from ``x.shape``)."""
    dims = [int(v) for v in shape.reshape(-1).tolist()] if isinstance(shape, torch.Tensor) else list(shape)
    return torch.full(dims, value, dtype=dtype)


MATH_FUNCTIONS = {
    f"squeezestudio.{fn.__name__}": fn
    for fn in (onnx_variadic, onnx_expand, onnx_pow, onnx_selu, onnx_prelu, onnx_gemm, onnx_reduce, onnx_split,
               onnx_dropout_mask, onnx_class_scores, onnx_softplus, onnx_gelu, onnx_constant_of_shape)
}
