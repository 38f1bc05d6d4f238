"""Converters for elementwise, variadic, reduction and splitting ops (no weights).

Each emits a call of an allow-listed torch function or of one of the ONNX
functions in :mod:`squeezestudio.core.model.graph_spec.onnx_math_functions`.
:data:`ELEMENTWISE_CONVERTERS` is merged into the converter table.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node, int_list
from squeezestudio.core.io.loading.onnx_folding import TORCH_DTYPES, supported_array

Converter = Callable[[ConversionContext, onnx.NodeProto], None]


def _call(target: str, **fixed: object) -> Converter:
    """A converter calling ``target`` on all of the node's inputs, with fixed keyword arguments."""
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        ctx.call(node, target, [ctx.ref(n) for n in node.input if n], dict(fixed) or None)
    return convert


def _variadic(kind: str) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        refs = [ctx.ref(n) for n in node.input if n]
        if len(refs) == 1:
            ctx.alias(node.output[0], refs[0])
        else:
            ctx.call(node, "squeezestudio.onnx_variadic", [kind] + refs)
    return convert


def _elu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    ctx.call(node, "torch.nn.functional.elu", [ctx.ref(node.input[0])],
             {"alpha": float(attributes(node).get("alpha", 1.0))})


def _selu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    ctx.call(node, "squeezestudio.onnx_selu", [ctx.ref(node.input[0]), float(a.get("alpha", 1.67326319217681884765625)),
                                               float(a.get("gamma", 1.05070102214813232421875))])


def _celu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    ctx.call(node, "torch.nn.functional.celu", [ctx.ref(node.input[0])],
             {"alpha": float(attributes(node).get("alpha", 1.0))})


def _gelu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    approximate = str(attributes(node).get("approximate", "none"))
    if approximate not in ("none", "tanh"):
        raise UnsupportedOperatorError(f"{describe_node(node)} uses approximate={approximate!r}, which is not "
                                       "supported")
    ctx.call(node, "squeezestudio.onnx_gelu", [ctx.ref(node.input[0]), approximate])


def _prelu(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    slope = ctx.const(node.input[1])
    shape = ctx.shapes.get(node.input[0])
    channels = shape[1] if shape and len(shape) >= 2 else None
    per_channel = (slope is not None and channels is not None and slope.size == channels
                   and slope.ndim == len(shape) - 1 and slope.shape[0] == channels)
    if slope is not None and slope.dtype.kind == "f" and (slope.size == 1 and slope.ndim <= 1 or per_channel):
        args = {"num_parameters": int(slope.size)}
        ctx.layer(node, node.input[1], "PReLU", args, {"weight": slope.reshape(-1).astype(np.float32)},
                  [ctx.ref(node.input[0])])
        return
    ctx.call(node, "squeezestudio.onnx_prelu", [ctx.ref(node.input[0]), ctx.ref(node.input[1])])


def _where(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    ctx.call(node, "torch.where", [ctx.ref(n) for n in node.input])


def _expand(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    shape = ctx.shape_operand(node.input[1])
    ctx.call(node, "squeezestudio.onnx_expand", [ctx.ref(node.input[0]),
                                                 shape if shape is not None else ctx.ref(node.input[1])])


def _constant_of_shape(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    value = attributes(node).get("value")
    fill = supported_array(value if value is not None else np.zeros(1, np.float32), describe_node(node))
    dtype = TORCH_DTYPES[onnx.helper.np_dtype_to_tensor_dtype(fill.dtype)]
    shape = ctx.shape_operand(node.input[0])
    ctx.call(node, "squeezestudio.onnx_constant_of_shape", [shape if shape is not None else ctx.ref(node.input[0]),
                                                            fill.reshape(-1)[0].item(), dtype])


def _pow(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    ctx.call(node, "squeezestudio.onnx_pow", [ctx.ref(node.input[0]), ctx.ref(node.input[1])])


def _einsum(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    equation = str(attributes(node)["equation"]).replace(" ", "")
    ctx.call(node, "torch.einsum", [equation] + [ctx.ref(n) for n in node.input if n])


def _reduce(kind: str) -> Converter:
    def convert(ctx: ConversionContext, node: onnx.NodeProto) -> None:
        a = attributes(node)
        ctx.call(node, "squeezestudio.onnx_reduce", [kind, ctx.ref(node.input[0]), ctx.axes(node),
                                                     int(a.get("keepdims", 1)),
                                                     int(a.get("noop_with_empty_axes", 0))])
    return convert


def _split(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    axis = int(a.get("axis", 0))
    sizes = int_list(a["split"]) if "split" in a else None
    if sizes is None and ctx.optional_input(node, 1):
        sizes = int_list(ctx.require_const(node, 1, "split sizes"))
    count = int(a.get("num_outputs", len(node.output)))
    if sizes is not None and len(sizes) != len(node.output):
        raise UnsupportedOperatorError(f"{describe_node(node)} lists {len(sizes)} split sizes for "
                                       f"{len(node.output)} outputs")
    ctx.call_outputs(node, "squeezestudio.onnx_split", [ctx.ref(node.input[0]), axis, sizes, count])


def _dropout(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    training = ctx.optional_input(node, 2)
    if training:
        flag = ctx.const(training)
        if flag is None or bool(np.asarray(flag).reshape(-1)[0]):
            raise UnsupportedOperatorError(f"{describe_node(node)} runs in training mode (random masks), which "
                                           "is not supported; export the model in inference mode")
    x = ctx.ref(node.input[0])
    ctx.alias(node.output[0], x)
    if len(node.output) > 1 and node.output[1]:
        ctx.values[node.output[1]] = ctx.builder.add_node("call_function", "squeezestudio.onnx_dropout_mask", [x],
                                                          hint=node.output[1])


_UNARY = {"Log": "torch.log", "Reciprocal": "torch.reciprocal", "Floor": "torch.floor", "Ceil": "torch.ceil",
          "Round": "torch.round", "Sign": "torch.sign", "Sin": "torch.sin", "Cos": "torch.cos", "Tan": "torch.tan",
          "Asin": "torch.asin", "Acos": "torch.acos", "Atan": "torch.atan", "Sinh": "torch.sinh",
          "Cosh": "torch.cosh", "Asinh": "torch.asinh", "Acosh": "torch.acosh", "Atanh": "torch.atanh",
          "Softplus": "squeezestudio.onnx_softplus", "Softsign": "torch.nn.functional.softsign",
          "Mish": "torch.nn.functional.mish", "Not": "torch.logical_not"}
_BINARY = {"Equal": "torch.eq", "Greater": "torch.gt", "Less": "torch.lt", "GreaterOrEqual": "torch.ge",
           "LessOrEqual": "torch.le", "And": "torch.logical_and", "Or": "torch.logical_or",
           "Xor": "torch.logical_xor"}

ELEMENTWISE_CONVERTERS: dict[str, Converter] = {
    **{op: _call(target) for op, target in {**_UNARY, **_BINARY}.items()},
    "Sum": _variadic("sum"), "Mean": _variadic("mean"), "Max": _variadic("max"), "Min": _variadic("min"),
    "Elu": _elu, "Selu": _selu, "Celu": _celu, "Gelu": _gelu, "PRelu": _prelu, "Where": _where,
    "Expand": _expand, "ConstantOfShape": _constant_of_shape, "Pow": _pow, "Einsum": _einsum, "Split": _split, "Dropout": _dropout,
    "ReduceMax": _reduce("max"), "ReduceMin": _reduce("min"), "ReduceSum": _reduce("sum"),
    "ReduceProd": _reduce("prod"), "ReduceMean": _reduce("mean"), "ReduceL1": _reduce("l1"),
    "ReduceL2": _reduce("l2"), "ReduceSumSquare": _reduce("sum_square"), "ReduceLogSum": _reduce("log_sum"),
    "ReduceLogSumExp": _reduce("log_sum_exp"),
}
