"""Torch functions with ONNX semantics, for ops that have no one-line torch equivalent.

The ONNX converter emits graph nodes calling these by name; they are part of
the function allow-list (:mod:`.allowed`), so a rebuilt graph can use them
too. Each one is a small pure function of tensors and Python literals.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

IntsOrTensor = Union[Sequence[int], torch.Tensor]


def _ints(values: IntsOrTensor) -> list:
    """Plain dimensions; sizes read from ``x.shape`` stay symbolic so exporters keep them dynamic."""
    if isinstance(values, torch.Tensor):
        return [int(v) for v in values.reshape(-1).tolist()]
    return [v if not isinstance(v, (float, bool)) else int(v) for v in values]


def onnx_reshape(x: torch.Tensor, shape: IntsOrTensor, allowzero: int = 0) -> torch.Tensor:
    """ONNX Reshape: a 0 copies the input's dimension (unless ``allowzero``), -1 is inferred."""
    target = _ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return torch.reshape(x, target)


def onnx_flatten(x: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """ONNX Flatten: always 2-D, splitting the dimensions at ``axis``."""
    axis = axis + x.dim() if axis < 0 else axis
    if axis == 0:
        return torch.reshape(x, (1, -1))
    if axis == x.dim():
        x = torch.unsqueeze(x, -1)
    return torch.flatten(torch.flatten(x, axis), 0, axis - 1)


def onnx_shape(x: torch.Tensor, start: int = 0, end: Optional[int] = None) -> torch.Tensor:
    """ONNX Shape: the input's shape as an int64 tensor (optionally a slice of it)."""
    return torch.tensor(list(x.shape)[start:end], dtype=torch.int64, device=x.device)


def onnx_gather(x: torch.Tensor, indices: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """ONNX Gather: pick entries along ``axis``; negative indices count from the end."""
    axis = axis + x.dim() if axis < 0 else axis
    idx = indices.to(torch.int64)
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    picked = torch.index_select(x, axis, idx.reshape(-1))
    return picked.reshape(tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]))


def onnx_slice(x: torch.Tensor, starts: IntsOrTensor, ends: IntsOrTensor,
               axes: Optional[IntsOrTensor] = None, steps: Optional[IntsOrTensor] = None) -> torch.Tensor:
    """ONNX Slice (out-of-range starts/ends clamp like Python's; negative steps walk backwards)."""
    starts_l, ends_l = _ints(starts), _ints(ends)
    axes_l = _ints(axes) if axes is not None else list(range(len(starts_l)))
    steps_l = _ints(steps) if steps is not None else [1] * len(starts_l)
    index: list[slice] = [slice(None)] * x.dim()
    backwards: list[tuple[int, slice]] = []
    for start, end, axis, step in zip(starts_l, ends_l, axes_l, steps_l):
        axis = axis + x.dim() if axis < 0 else axis
        if step < 0:
            backwards.append((axis, slice(start, end, step)))
        else:
            index[axis] = slice(start, end, step)
    x = x[tuple(index)]
    for axis, part in backwards:  # torch has no negative steps: pick the indices explicitly
        picked = list(range(*part.indices(int(x.shape[axis]))))
        x = torch.index_select(x, axis, torch.tensor(picked, dtype=torch.int64))
    return x


def onnx_squeeze(x: torch.Tensor, axes: Optional[IntsOrTensor] = None) -> torch.Tensor:
    """ONNX Squeeze: drop the listed size-1 axes (all of them when none are given)."""
    if axes is None:
        return torch.squeeze(x)
    dims = sorted((a + x.dim() if a < 0 else a for a in _ints(axes)), reverse=True)
    for d in dims:
        x = torch.squeeze(x, d)
    return x


def onnx_unsqueeze(x: torch.Tensor, axes: IntsOrTensor) -> torch.Tensor:
    """ONNX Unsqueeze: axes refer to the output's rank."""
    listed = _ints(axes)
    rank = x.dim() + len(listed)
    for d in sorted(a + rank if a < 0 else a for a in listed):
        x = torch.unsqueeze(x, d)
    return x


def onnx_softmax_legacy(x: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """Softmax before opset 13: over all dimensions from ``axis`` on, flattened."""
    flat = onnx_flatten(x, axis)
    return torch.reshape(torch.softmax(flat, dim=1), x.shape)


def onnx_hardsigmoid(x: torch.Tensor, alpha: float = 0.2, beta: float = 0.5) -> torch.Tensor:
    """ONNX HardSigmoid: ``clamp(alpha * x + beta, 0, 1)``."""
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


def onnx_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ONNX Div: integer inputs divide with truncation, floats as usual."""
    if isinstance(a, torch.Tensor) and not a.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return torch.div(a, b)


def onnx_cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """ONNX Cast to one of the dtypes a description can name."""
    return x.to(dtype)


def onnx_pad(x: torch.Tensor, pads: Sequence[int], mode: str = "constant", value: float = 0.0) -> torch.Tensor:
    """ONNX Pad: ``pads`` lists all begins then all ends, in dimension order."""
    rank = len(pads) // 2
    torch_pads: list[int] = []
    for d in reversed(range(rank)):
        torch_pads += [int(pads[d]), int(pads[d + rank])]
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
        torch_pads = torch_pads[:-2]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode]
    if torch_mode == "constant":
        return F.pad(x, torch_pads, mode="constant", value=value)
    return F.pad(x, torch_pads, mode=torch_mode)


def onnx_reduce_mean(x: torch.Tensor, axes: Optional[Sequence[int]] = None, keepdims: int = 1) -> torch.Tensor:
    """ONNX ReduceMean over the given axes (all of them when none are given)."""
    dims = list(range(x.dim())) if not axes else [int(a) for a in axes]
    return torch.mean(x, dim=dims, keepdim=bool(keepdims))


def onnx_transpose(x: torch.Tensor, perm: Optional[Sequence[int]] = None) -> torch.Tensor:
    """ONNX Transpose: reverse the axes unless ``perm`` says otherwise."""
    order = list(perm) if perm is not None else list(reversed(range(x.dim())))
    return torch.permute(x, order)


# Shape arithmetic on Python lists: ONNX computes shapes with tensors (Shape -> Gather ->
# Concat -> Reshape); keeping them as lists of ints lets exporters see dynamic sizes.
ShapeValue = Union[int, list]


def shape_list(x: torch.Tensor, start: int = 0, end: Optional[int] = None) -> list:
    """ONNX Shape as a list of (possibly symbolic) ints."""
    return list(x.shape)[start:end]


def shape_pick(shape: list, index: Union[int, list]) -> ShapeValue:
    """ONNX Gather on a shape: one dimension (scalar index) or several (list of indices)."""
    if isinstance(index, list):
        return [shape[i] for i in index]
    return shape[index]


def shape_unsqueeze(value: ShapeValue) -> list:
    """ONNX Unsqueeze(axes=[0]) of a scalar dimension."""
    return list(value) if isinstance(value, list) else [value]


def shape_squeeze(value: ShapeValue) -> ShapeValue:
    """ONNX Squeeze of a one-element shape list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def shape_concat(parts: list) -> list:
    """ONNX Concat(axis=0) of shape lists and scalars."""
    out: list = []
    for part in parts:
        out.extend(part if isinstance(part, list) else [part])
    return out


def shape_slice(value: list, start: int, end: int, step: int = 1) -> list:
    """ONNX Slice of a shape list."""
    return value[start:end:step]


def shape_arith(op: str, a: ShapeValue, b: ShapeValue) -> ShapeValue:
    """Integer Add/Sub/Mul/Div of shape values, elementwise for lists (ONNX broadcasting)."""
    def one(x: object, y: object) -> object:
        if op == "add":
            return x + y
        if op == "sub":
            return x - y
        if op == "mul":
            return x * y
        return x // y
    if isinstance(a, list) or isinstance(b, list):
        n = len(a) if isinstance(a, list) else len(b)
        aa = a if isinstance(a, list) else [a] * n
        bb = b if isinstance(b, list) else [b] * n
        if len(aa) == 1:
            aa = aa * len(bb)
        if len(bb) == 1:
            bb = bb * len(aa)
        return [one(x, y) for x, y in zip(aa, bb)]
    return one(a, b)


def shape_tensor(value: ShapeValue) -> torch.Tensor:
    """A shape value as an int64 tensor, for ops that consume it as data."""
    return torch.tensor(value, dtype=torch.int64)


ONNX_FUNCTIONS = {
    f"squeezestudio.{fn.__name__}": fn
    for fn in (onnx_reshape, onnx_flatten, onnx_shape, onnx_gather, onnx_slice, onnx_squeeze,
               onnx_unsqueeze, onnx_softmax_legacy, onnx_hardsigmoid, onnx_div, onnx_cast,
               onnx_pad, onnx_reduce_mean, onnx_transpose, shape_list, shape_pick, shape_unsqueeze,
               shape_squeeze, shape_concat, shape_slice, shape_arith, shape_tensor)
}
