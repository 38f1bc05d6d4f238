"""Padding rules shared by Conv and the pooling ops, and the MaxPool/AveragePool converters.

ONNX allows asymmetric padding, ``auto_pad`` and padding wider than torch's
layers accept. Conv gets an explicit pad node in front of a layer with zero
padding; pooling uses torch's layer when it computes the ONNX definition
and otherwise the general ``squeezestudio.onnx_pool`` function (any
padding, dilation and ceil mode, averages counting only real elements).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import onnx

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.model.graph_spec.values import Ref
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node


def _auto_pads(ctx: ConversionContext, node: onnx.NodeProto, mode: str, kernel: Sequence[int],
               strides: Sequence[int], dilations: Sequence[int]) -> list[int]:
    n = len(kernel)
    if mode == "VALID":
        return [0] * (2 * n)
    shape = ctx.shapes.get(node.input[0])
    sizes = list(shape[2:]) if shape and len(shape) == n + 2 else [None] * n
    begins, ends = [], []
    for k, s, d, size in zip(kernel, strides, dilations, sizes):
        effective = (k - 1) * d + 1
        if s == 1:
            total = effective - 1
        elif size is None:
            raise UnsupportedOperatorError(f"{describe_node(node)} uses auto_pad={mode} with a stride on an input "
                                           "of unknown size, which is not supported")
        else:
            total = max(0, (math.ceil(size / s) - 1) * s + effective - size)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def spatial_padding(ctx: ConversionContext, node: onnx.NodeProto, x: Ref, kernel: Sequence[int],
                    strides: Sequence[int], dilations: Sequence[int], pad_value: float,
                    limit: Optional[Sequence[int]] = None, explicit_ok: bool = True) -> tuple[tuple[int, ...], Ref]:
    """The layer's symmetric ``padding``, inserting an explicit pad node first when it cannot express it."""
    a = attributes(node)
    n = len(kernel)
    mode = str(a.get("auto_pad", "NOTSET"))
    if mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = _auto_pads(ctx, node, mode, kernel, strides, dilations)
    else:
        pads = [int(p) for p in a.get("pads", [0] * (2 * n))]
    begins, ends = pads[:n], pads[n:]
    fits = limit is None or all(b <= lim for b, lim in zip(begins, limit))
    if begins == ends and fits:
        return tuple(begins), x
    if not explicit_ok:
        raise UnsupportedOperatorError(f"{describe_node(node)} pads asymmetrically without counting the padding, "
                                       "which is not supported")
    full = [0, 0] + begins + [0, 0] + ends
    padded = ctx.builder.add_node("call_function", "squeezestudio.onnx_pad", [x, full, "constant", pad_value],
                                  hint=f"{node.output[0]}_pad")
    return tuple([0] * n), padded


def _pool_common(node: onnx.NodeProto) -> tuple[list[int], list[int], list[int], bool]:
    a = attributes(node)
    kernel = [int(k) for k in a["kernel_shape"]]
    n = len(kernel)
    if n not in (1, 2, 3):
        raise UnsupportedOperatorError(f"{describe_node(node)} pools over {n} dimensions; 1-D to 3-D pooling "
                                       "is supported")
    strides = [int(s) for s in a.get("strides", [1] * n)]
    dilations = [int(d) for d in a.get("dilations", [1] * n)]
    return kernel, strides, dilations, bool(int(a.get("ceil_mode", 0)))


def _pads(ctx: ConversionContext, node: onnx.NodeProto, kernel: list[int], strides: list[int],
          dilations: list[int]) -> list[int]:
    a = attributes(node)
    mode = str(a.get("auto_pad", "NOTSET"))
    if mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        return _auto_pads(ctx, node, mode, kernel, strides, dilations)
    return [int(p) for p in a.get("pads", [0] * (2 * len(kernel)))]


def _pool_layer(ctx: ConversionContext, node: onnx.NodeProto, type_name: str, args: dict, x: Ref) -> None:
    path = ctx.builder.claim_path(node.name.strip("/") or node.op_type.lower(), "pool")
    ctx.builder.add_module(path, type_name, args)
    ctx.call(node, path, [x], op="call_module")


def _general_pool(ctx: ConversionContext, node: onnx.NodeProto, kind: str, kernel: list[int], strides: list[int],
                  pads: list[int], dilations: list[int], ceil_mode: bool, count_pad: bool) -> None:
    ctx.call(node, "squeezestudio.onnx_pool", [kind, ctx.ref(node.input[0]), kernel, strides, pads, dilations,
                                               int(ceil_mode), int(count_pad)])


def convert_max_pool(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedOperatorError(f"{describe_node(node)} asks for its Indices output, which is not "
                                       "supported; only the pooled values are")
    if int(attributes(node).get("storage_order", 0)):
        raise UnsupportedOperatorError(f"{describe_node(node)} uses storage_order=1, which is not supported")
    kernel, strides, dilations, ceil_mode = _pool_common(node)
    pads = _pads(ctx, node, kernel, strides, dilations)
    n = len(kernel)
    limit = [((k - 1) * d + 1) // 2 for k, d in zip(kernel, dilations)]
    if pads[:n] != pads[n:] or any(p > lim for p, lim in zip(pads, limit)) or ceil_mode:
        _general_pool(ctx, node, "max", kernel, strides, pads, dilations, ceil_mode, False)
        return
    args = {"kernel_size": tuple(kernel), "stride": tuple(strides), "padding": tuple(pads[:n]),
            "dilation": tuple(dilations), "ceil_mode": ceil_mode}
    _pool_layer(ctx, node, f"MaxPool{n}d", args, ctx.ref(node.input[0]))


def convert_average_pool(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    kernel, strides, dilations, ceil_mode = _pool_common(node)
    count_pad = bool(int(attributes(node).get("count_include_pad", 0)))
    pads = _pads(ctx, node, kernel, strides, dilations)
    n = len(kernel)
    layer_fits = (pads[:n] == pads[n:] and all(p <= k // 2 for p, k in zip(pads, kernel))
                  and all(d == 1 for d in dilations) and not ceil_mode)
    if not layer_fits:
        _general_pool(ctx, node, "avg", kernel, strides, pads, dilations, ceil_mode, count_pad)
        return
    args = {"kernel_size": tuple(kernel), "stride": tuple(strides), "padding": tuple(pads[:n]),
            "ceil_mode": ceil_mode, "count_include_pad": count_pad}
    _pool_layer(ctx, node, f"AvgPool{n}d", args, ctx.ref(node.input[0]))
