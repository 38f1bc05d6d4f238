"""One converter per ONNX operator: ONNX node -> nodes of a graph description.

Conv, Gemm, MatMul with a constant weight, and BatchNormalization become real
``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d`` layers (so compression
methods find them); everything else becomes a call of an allow-listed torch
function. :data:`CONVERTERS` maps op types to converters.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import onnx
import torch

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node, int_list
from squeezestudio.core.io.loading.onnx_folding import TORCH_DTYPES
from squeezestudio.core.io.loading.onnx_elementwise import ELEMENTWISE_CONVERTERS
from squeezestudio.core.io.loading.onnx_layers import LAYER_CONVERTERS
from squeezestudio.core.io.loading.onnx_pooling import convert_average_pool, convert_max_pool, spatial_padding
from squeezestudio.core.io.loading.onnx_shape_ops import convert_in_shape_domain
from squeezestudio.core.model.graph_spec.values import Ref

Converter = Callable[[ConversionContext, onnx.NodeProto], None]


def _conv(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    weight = ctx.require_const(node, 1, "weight").astype(np.float32)
    bias_name = ctx.optional_input(node, 2)
    bias = ctx.require_const(node, 2, "bias").astype(np.float32) if bias_name else None
    spatial = weight.ndim - 2
    if spatial not in (1, 2, 3):
        raise UnsupportedOperatorError(f"{describe_node(node)} is a {spatial}-D convolution; 1-D to 3-D "
                                       "convolutions are supported")
    group = int(a.get("group", 1))
    kernel = tuple(int(k) for k in weight.shape[2:])
    strides = tuple(a.get("strides", [1] * spatial))
    dilations = tuple(a.get("dilations", [1] * spatial))
    x = ctx.ref(node.input[0])
    padding, x = spatial_padding(ctx, node, x, kernel, strides, dilations, pad_value=0.0)
    args = {"in_channels": int(weight.shape[1]) * group, "out_channels": int(weight.shape[0]),
            "kernel_size": kernel, "stride": strides, "padding": padding, "dilation": dilations,
            "groups": group, "bias": bias is not None}
    weights = {"weight": weight}
    if bias is not None:
        weights["bias"] = bias
    ctx.layer(node, node.input[1], f"Conv{spatial}d", args, weights, [x])


def _linear(ctx: ConversionContext, node: onnx.NodeProto, weight_name: str, weight: np.ndarray,
            bias: Optional[np.ndarray], x: Ref) -> None:
    args = {"in_features": int(weight.shape[1]), "out_features": int(weight.shape[0]), "bias": bias is not None}
    weights = {"weight": np.ascontiguousarray(weight, dtype=np.float32)}
    if bias is not None:
        weights["bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    ctx.layer(node, weight_name, "Linear", args, weights, [x])


def _gemm(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
    b = ctx.const(node.input[1])
    c_name = ctx.optional_input(node, 2)
    c = ctx.const(c_name) if c_name else None
    out = None if b is None or b.ndim != 2 else b.shape[0 if trans_b else 1]
    bias = None
    if c is not None and out is not None and (c.size == 1 or (c.size == out and (c.ndim == 1 or c.shape[0] == 1))):
        bias = np.broadcast_to(c.reshape(-1), (out,)) * beta
    if b is None or b.dtype != np.float32 or (c_name and bias is None):  # the general form, as a function
        c_ref = ctx.ref(c_name) if c_name else None
        ctx.call(node, "squeezestudio.onnx_gemm", [ctx.ref(node.input[0]), ctx.ref(node.input[1]), c_ref,
                                                   alpha, beta, trans_a, trans_b])
        return
    weight = b if trans_b else b.T
    if alpha != 1.0:
        weight = weight * alpha
    x = ctx.ref(node.input[0])
    if trans_a:
        x = ctx.builder.add_node("call_function", "torch.permute", [x, [1, 0]], hint=f"{node.output[0]}_a")
    _linear(ctx, node, node.input[1], weight, bias, x)


def _matmul(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    b = ctx.const(node.input[1])
    if b is None or b.ndim != 2 or ctx.const(node.input[0]) is not None:
        ctx.call(node, "torch.matmul", [ctx.ref(node.input[0]), ctx.ref(node.input[1])])
        return
    bias = None
    user = ctx.only_consumer(node.output[0])
    if user is not None and user.op_type == "Add" and len(user.input) == 2:
        other = user.input[1] if user.input[0] == node.output[0] else user.input[0]
        c = ctx.const(other)
        if c is not None and c.size == b.shape[1] and c.shape[-1:] == (b.shape[1],) and c.ndim <= 2:
            bias = c.reshape(-1)
    _linear(ctx, node, node.input[1], b.T, bias, ctx.ref(node.input[0]))
    if bias is not None:  # the Add is folded into the layer's bias
        ctx.skipped.add(id(user))
        ctx.alias(user.output[0], ctx.values[node.output[0]])


def _batch_norm(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    if int(a.get("training_mode", 0)) or len([o for o in node.output if o]) > 1:
        raise UnsupportedOperatorError(f"{describe_node(node)} is in training mode, which is not supported")
    scale, shift, mean, var = (ctx.require_const(node, i, what).astype(np.float32)
                               for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    rank = ctx.rank(node.input[0])
    type_name = {2: "BatchNorm1d", 3: "BatchNorm1d", 5: "BatchNorm3d"}.get(rank, "BatchNorm2d")
    if rank is not None and rank not in (2, 3, 4, 5):
        raise UnsupportedOperatorError(f"{describe_node(node)} normalizes a tensor of rank {rank}; ranks 2 to 5 "
                                       "are supported")
    args = {"num_features": int(scale.shape[0]), "eps": float(a.get("epsilon", 1e-5)),
            "momentum": round(1.0 - float(a.get("momentum", 0.9)), 6)}
    weights = {"weight": scale, "bias": shift, "running_mean": mean, "running_var": var,
               "num_batches_tracked": np.array(0, dtype=np.int64)}
    ctx.layer(node, node.input[1], type_name, args, weights, [ctx.ref(node.input[0])])


def _unary(target: str, **fixed: object) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        ctx.call(node, target, [ctx.ref(node.input[0])], dict(fixed) or None)
    return convert


def _binary(target: str) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        ctx.call(node, target, [ctx.ref(node.input[0]), ctx.ref(node.input[1])])
    return convert


def _clip(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    lo, hi = a.get("min"), a.get("max")
    for index in (1, 2):
        if ctx.optional_input(node, index):
            value = float(ctx.require_const(node, index, "min/max").reshape(-1)[0])
            lo, hi = (value, hi) if index == 1 else (lo, value)
    x = ctx.ref(node.input[0])
    if lo is None and hi is None:
        ctx.alias(node.output[0], x)
    elif lo == 0.0 and hi == 6.0:
        ctx.call(node, "torch.nn.functional.relu6", [x])
    elif lo == 0.0 and hi is None:
        ctx.call(node, "torch.relu", [x])
    else:
        ctx.call(node, "torch.clamp", [x], {"min": lo, "max": hi})


def _hard_sigmoid(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5):
        ctx.call(node, "torch.nn.functional.hardsigmoid", [ctx.ref(node.input[0])])
    else:
        ctx.call(node, "squeezestudio.onnx_hardsigmoid", [ctx.ref(node.input[0])], {"alpha": alpha, "beta": beta})


def _leaky_relu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    alpha = float(attributes(node).get("alpha", 0.01))
    ctx.call(node, "torch.nn.functional.leaky_relu", [ctx.ref(node.input[0]), alpha])


def _global_pool(kind: str) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        rank = ctx.rank(node.input[0])
        if rank not in (None, 3, 4):
            raise UnsupportedOperatorError(f"{describe_node(node)} on a rank-{rank} tensor is not supported")
        dims = 1 if rank == 3 else 2
        path = ctx.builder.claim_path(node.name.strip("/") or f"global_{kind}_pool", "pool")
        type_name = f"Adaptive{'Avg' if kind == 'avg' else 'Max'}Pool{dims}d"
        args: dict[str, object] = {"output_size": 1}
        ctx.builder.add_module(path, type_name, args)
        ctx.call(node, path, [ctx.ref(node.input[0])], op="call_module")
    return convert


def _flatten(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    axis = int(attributes(node).get("axis", 1))
    x = ctx.ref(node.input[0])
    rank = ctx.rank(node.input[0])
    if axis == 1 and rank is not None and rank >= 2:
        ctx.call(node, "torch.flatten", [x, 1])
    else:
        ctx.call(node, "squeezestudio.onnx_flatten", [x, axis])


def _reshape(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    allowzero = int(attributes(node).get("allowzero", 0))
    x = ctx.ref(node.input[0])
    shape = ctx.const(node.input[1])
    if shape is None:
        target_ref = ctx.shape_values.get(node.input[1]) or ctx.ref(node.input[1])
        ctx.call(node, "squeezestudio.onnx_reshape", [x, target_ref, allowzero])
        return
    target = int_list(shape)
    source = ctx.shapes.get(node.input[0])
    # A batch size baked in at export time (e.g. [1, 64]) keeps the batch dimension instead.
    if (source and target and source[0] is not None and target[0] == source[0] and 0 not in target
            and all(d is not None for d in source[1:]) and -1 not in target[:1]):
        rest_in = int(np.prod(source[1:])) if len(source) > 1 else 1
        rest_out = int(np.prod([d for d in target[1:] if d != -1])) if len(target) > 1 else 1
        if -1 in target[1:] or rest_in == rest_out:
            target = [0] + target[1:]
            allowzero = 0
    ctx.call(node, "squeezestudio.onnx_reshape", [x, target, allowzero])


def _concat(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    axis = int(attributes(node)["axis"])
    ctx.call(node, "torch.cat", [[ctx.ref(n) for n in node.input if n]], {"dim": axis})


def _softmax(target: str) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        x = ctx.ref(node.input[0])
        if ctx.opset >= 13:
            ctx.call(node, target, [x], {"dim": int(attributes(node).get("axis", -1))})
            return
        axis, rank = int(attributes(node).get("axis", 1)), ctx.rank(node.input[0])
        if axis == -1 or (rank is not None and axis == rank - 1):
            ctx.call(node, target, [x], {"dim": -1})
        elif target == "torch.softmax":
            ctx.call(node, "squeezestudio.onnx_softmax_legacy", [x, axis])
        else:
            raise UnsupportedOperatorError(f"{describe_node(node)} over several axes (opset < 13) is not supported")
    return convert


def _pad(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    mode = str(a.get("mode", "constant"))
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise UnsupportedOperatorError(f"{describe_node(node)} uses pad mode {mode!r}, which is not supported")
    pads = int_list(a["pads"]) if "pads" in a else int_list(ctx.require_const(node, 1, "pads"))
    value = float(a.get("value", 0.0))
    if ctx.optional_input(node, 2):
        value = float(ctx.require_const(node, 2, "pad value").reshape(-1)[0])
    if ctx.optional_input(node, 3):
        axes = int_list(ctx.require_const(node, 3, "axes"))
        rank = ctx.rank(node.input[0])
        if rank is None:
            raise UnsupportedOperatorError(f"{describe_node(node)} pads listed axes of a tensor of unknown rank")
        full = [0] * (2 * rank)
        for i, axis in enumerate(axes):
            axis = axis + rank if axis < 0 else axis
            full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
        pads = full
    ctx.call(node, "squeezestudio.onnx_pad", [ctx.ref(node.input[0]), pads, mode, value])


def _transpose(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    perm = attributes(node).get("perm")
    x = ctx.ref(node.input[0])
    if perm is None:
        ctx.call(node, "squeezestudio.onnx_transpose", [x])
    else:
        ctx.call(node, "torch.permute", [x, [int(p) for p in perm]])


def _passthrough(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1] and ctx.consumers.get(node.output[1]):
        raise UnsupportedOperatorError(f"{describe_node(node)} uses its mask output, which is not supported")
    ctx.alias(node.output[0], ctx.ref(node.input[0]))


def _axes_op(target: str, required: bool) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        axes = ctx.axes(node)
        if axes is None and required:
            raise UnsupportedOperatorError(f"{describe_node(node)} has no axes")
        ctx.call(node, target, [ctx.ref(node.input[0]), axes])
    return convert


def _gather(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    axis = int(attributes(node).get("axis", 0))
    ctx.call(node, "squeezestudio.onnx_gather", [ctx.ref(node.input[0]), ctx.ref(node.input[1]), axis])


def _slice(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    if ctx.opset < 10:
        parts: list[object] = [int_list(a["starts"]), int_list(a["ends"]), ctx.axes(node), None]  # one input
    else:
        parts = []
        for index in range(1, 5):
            name = ctx.optional_input(node, index)
            const = ctx.const(name) if name else None
            parts.append(None if name is None else (int_list(const) if const is not None else ctx.ref(name)))
    steps = parts[3]
    if isinstance(steps, list) and any(s == 0 for s in steps):
        raise UnsupportedOperatorError(f"{describe_node(node)} slices with a step of 0, which ONNX does not allow")
    ctx.call(node, "squeezestudio.onnx_slice", [ctx.ref(node.input[0])] + parts)


_CAST_DTYPES = {**TORCH_DTYPES, onnx.TensorProto.UINT16: torch.uint16, onnx.TensorProto.UINT32: torch.uint32,
                onnx.TensorProto.UINT64: torch.uint64}


def _cast(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    to = int(attributes(node)["to"])
    if to not in _CAST_DTYPES:
        raise UnsupportedOperatorError(f"{describe_node(node)} casts to an unsupported type ({to})")
    ctx.call(node, "squeezestudio.onnx_cast", [ctx.ref(node.input[0]), _CAST_DTYPES[to]])


def _shape_aware(convert: Converter) -> Converter:
    """Try integer shape arithmetic first (see :mod:`.onnx_shape_ops`), else convert as tensors."""
    def wrapped(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        if not convert_in_shape_domain(ctx, node):
            convert(ctx, node)
    return wrapped


def _no_tensor_path(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    raise AssertionError("Shape is always converted in the shape domain")


CONVERTERS: dict[str, Converter] = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batch_norm,
    "Relu": _unary("torch.relu"), "Sigmoid": _unary("torch.sigmoid"), "Tanh": _unary("torch.tanh"),
    "HardSwish": _unary("torch.nn.functional.hardswish"), "HardSigmoid": _hard_sigmoid,
    "LeakyRelu": _leaky_relu, "Clip": _clip, "Erf": _unary("torch.erf"), "Sqrt": _unary("torch.sqrt"),
    "Exp": _unary("torch.exp"), "Neg": _unary("torch.neg"), "Abs": _unary("torch.abs"),
    "Add": _binary("torch.add"), "Sub": _binary("torch.sub"), "Mul": _binary("torch.mul"),
    "Div": _binary("squeezestudio.onnx_div"),
    "MaxPool": convert_max_pool, "AveragePool": convert_average_pool,
    "GlobalAveragePool": _global_pool("avg"), "GlobalMaxPool": _global_pool("max"),
    "Flatten": _flatten, "Reshape": _reshape, "Concat": _concat, "Transpose": _transpose,
    "Softmax": _softmax("torch.softmax"), "LogSoftmax": _softmax("torch.log_softmax"), "Pad": _pad,
    "Identity": _passthrough,
    "Squeeze": _axes_op("squeezestudio.onnx_squeeze", required=False),
    "Unsqueeze": _axes_op("squeezestudio.onnx_unsqueeze", required=True),
    "Gather": _gather, "Slice": _slice, "Cast": _cast,
    **ELEMENTWISE_CONVERTERS, **LAYER_CONVERTERS,
}
for _op in ("Add", "Sub", "Mul", "Div", "Concat", "Gather", "Unsqueeze", "Squeeze", "Slice", "Cast", "Identity"):
    CONVERTERS[_op] = _shape_aware(CONVERTERS[_op])
CONVERTERS["Shape"] = _shape_aware(_no_tensor_path)
"""Op types (default ONNX domain) the converter supports; ``Constant`` is handled by the importer."""
