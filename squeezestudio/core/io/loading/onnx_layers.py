"""Converters for layer ops beyond Conv/Gemm/BatchNorm: ConvTranspose, the normalizations, LRN, Resize.

Weighted ops become real torch layers (``nn.ConvTranspose2d``,
``nn.InstanceNorm2d``, ``nn.LayerNorm``) whenever torch's layer computes the
ONNX definition, so compression methods and retraining see them; the
remaining forms call ONNX functions from
:mod:`squeezestudio.core.model.graph_spec.onnx_nn_functions`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node

Converter = Callable[[ConversionContext, onnx.NodeProto], None]


def _conv_transpose(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    weight = ctx.require_const(node, 1, "weight").astype(np.float32)
    bias = ctx.require_const(node, 2, "bias").astype(np.float32) if ctx.optional_input(node, 2) else None
    n = weight.ndim - 2
    if n not in (1, 2, 3):
        raise UnsupportedOperatorError(f"{describe_node(node)} is a {n}-D transposed convolution; 1-D to 3-D "
                                       "are supported")
    group = int(a.get("group", 1))
    kernel = [int(k) for k in a.get("kernel_shape", weight.shape[2:])]
    strides = [int(s) for s in a.get("strides", [1] * n)]
    dilations = [int(d) for d in a.get("dilations", [1] * n)]
    out_pad = [int(p) for p in a.get("output_padding", [0] * n)]
    pads = [int(p) for p in a.get("pads", [0] * (2 * n))]
    mode = str(a.get("auto_pad", "NOTSET"))
    shape = ctx.shapes.get(node.input[0])
    sizes = list(shape[2:]) if shape and len(shape) == n + 2 else [None] * n
    full = [None if size is None else s * (size - 1) + (k - 1) * d + 1 + p
            for size, s, k, d, p in zip(sizes, strides, kernel, dilations, out_pad)]
    target = [int(v) for v in a["output_shape"]][-n:] if "output_shape" in a else None
    if target is None and mode in ("SAME_UPPER", "SAME_LOWER"):
        target = [None if size is None else size * s for size, s in zip(sizes, strides)]
    if target is not None:
        if any(t is None for t in target) or any(f is None for f in full):
            raise UnsupportedOperatorError(f"{describe_node(node)} fixes its output size on an input of unknown "
                                           "size, which is not supported")
        totals = [f - t for f, t in zip(full, target)]
        out_pad = [p - min(t, 0) for p, t in zip(out_pad, totals)]  # a larger output: extra rows at the end
        totals = [max(t, 0) for t in totals]
        upper = mode != "SAME_LOWER"
        pads = [t // 2 if upper else t - t // 2 for t in totals] + [t - t // 2 if upper else t // 2 for t in totals]
    elif mode == "VALID":
        pads = [0] * (2 * n)
    if any(p < 0 for p in pads):
        raise UnsupportedOperatorError(f"{describe_node(node)} asks for an output larger than the transposed "
                                       "convolution makes, which is not supported")
    begins, ends = pads[:n], pads[n:]
    if any(p >= max(s, d) for p, s, d in zip(out_pad, strides, dilations)):
        raise UnsupportedOperatorError(f"{describe_node(node)} uses output_padding {out_pad} not smaller than its "
                                       "stride or dilation, which is not supported")
    symmetric = begins == ends
    args = {"in_channels": int(weight.shape[0]), "out_channels": int(weight.shape[1]) * group,
            "kernel_size": tuple(kernel), "stride": tuple(strides), "padding": tuple(begins if symmetric else [0] * n),
            "output_padding": tuple(out_pad), "dilation": tuple(dilations), "groups": group,
            "bias": bias is not None}
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    out = ctx.layer(node, node.input[1], f"ConvTranspose{n}d", args, weights, [ctx.ref(node.input[0])])
    if not symmetric:  # crop the full output: begins off the front, ends off the back
        axes = list(range(2, 2 + n))
        stops = [-e if e else 2**62 for e in ends]
        ctx.call(node, "squeezestudio.onnx_slice", [out, begins, stops, axes, None])


def _instance_norm(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    scale = ctx.require_const(node, 1, "scale").astype(np.float32)
    bias = ctx.require_const(node, 2, "bias").astype(np.float32)
    rank = ctx.rank(node.input[0])
    if rank not in (3, 4, 5):
        raise UnsupportedOperatorError(f"{describe_node(node)} normalizes a tensor of rank {rank}; ranks 3 to 5 "
                                       "are supported")
    args = {"num_features": int(scale.shape[0]), "eps": float(attributes(node).get("epsilon", 1e-5)),
            "affine": True, "track_running_stats": False}
    ctx.layer(node, node.input[1], f"InstanceNorm{rank - 2}d", args, {"weight": scale, "bias": bias},
              [ctx.ref(node.input[0])])


def _layer_norm(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    axis, eps = int(a.get("axis", -1)), float(a.get("epsilon", 1e-5))
    scale, bias_name = ctx.const(node.input[1]), ctx.optional_input(node, 2)
    bias = ctx.const(bias_name) if bias_name else None
    shape = ctx.shapes.get(node.input[0])
    extra_outputs = any(name for name in node.output[1:])
    if (not extra_outputs and scale is not None and scale.dtype == np.float32 and shape and None not in shape
            and (bias_name is None or bias is not None)):
        axis_p = axis + len(shape) if axis < 0 else axis
        normalized = tuple(int(d) for d in shape[axis_p:])
        if scale.shape == normalized and (bias is None or bias.shape == normalized):
            weights = {"weight": scale} if bias is None else {"weight": scale, "bias": bias.astype(np.float32)}
            ctx.layer(node, node.input[1], "LayerNorm", {"normalized_shape": normalized, "eps": eps,
                                                         "bias": bias is not None}, weights, [ctx.ref(node.input[0])])
            return
    args = [ctx.ref(node.input[0]), ctx.ref(node.input[1]), ctx.ref(bias_name) if bias_name else None, axis, eps]
    ctx.call_outputs(node, "squeezestudio.onnx_layer_norm", args)


def _lrn(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    size = int(a["size"])
    ctx.call(node, "squeezestudio.onnx_lrn", [ctx.ref(node.input[0]), size, float(a.get("alpha", 1e-4)),
                                              float(a.get("beta", 0.75)), float(a.get("bias", 1.0))])


_COORDINATE_MODES = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"}
_NEAREST_MODES = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}


def _resize(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    a = attributes(node)
    mode = str(a.get("mode", "nearest"))
    coordinate = str(a.get("coordinate_transformation_mode", "asymmetric" if ctx.opset < 11 else "half_pixel"))
    nearest = str(a.get("nearest_mode", "round_prefer_floor" if ctx.opset >= 11 else "floor"))
    problems = []
    if mode not in ("nearest", "linear"):
        problems.append(f"mode={mode!r}")
    if coordinate not in _COORDINATE_MODES:
        problems.append(f"coordinate_transformation_mode={coordinate!r}")
    if mode == "nearest" and nearest not in _NEAREST_MODES:
        problems.append(f"nearest_mode={nearest!r}")
    if int(a.get("antialias", 0)):
        problems.append("antialias=1")
    policy = str(a.get("keep_aspect_ratio_policy", "stretch"))
    if policy not in ("stretch", "not_larger", "not_smaller"):
        problems.append(f"keep_aspect_ratio_policy={policy!r}")
    if problems:
        raise UnsupportedOperatorError(f"{describe_node(node)} uses {', '.join(problems)}, which is not supported")
    rank = ctx.rank(node.input[0])
    scales_name = node.input[1] if ctx.opset < 11 and len(node.input) > 1 else ctx.optional_input(node, 2)
    sizes_name = ctx.optional_input(node, 3) if ctx.opset >= 11 else None
    sizes = scales = None
    if sizes_name:
        sizes = [int(v) for v in ctx.require_const(node, 3, "sizes").reshape(-1)]
    elif scales_name:
        scales = [float(v) for v in ctx.require_const(node, list(node.input).index(scales_name), "scales")
                  .reshape(-1)]
    if (sizes or scales) is None or rank is None:
        raise UnsupportedOperatorError(f"{describe_node(node)} gives neither sizes nor scales, or resizes a "
                                       "tensor of unknown rank")
    axes = [int(v) + (rank if int(v) < 0 else 0) for v in a.get("axes", range(rank))]
    listed = sizes if sizes is not None else scales
    if len(listed) != len(axes):
        raise UnsupportedOperatorError(f"{describe_node(node)} lists {len(listed)} sizes/scales for {len(axes)} "
                                       "axes")
    full: list = [None] * rank
    for axis, value in zip(axes, listed):
        full[axis] = value
    if sizes is not None:
        shape = ctx.shapes.get(node.input[0]) or [None] * rank
        if any(f is None and shape[i] is None for i, f in enumerate(full)):
            raise UnsupportedOperatorError(f"{describe_node(node)} resizes some axes of unknown size")
        sizes, scales = [shape[i] if f is None else f for i, f in enumerate(full)], None
        if policy != "stretch":  # one scale for the listed axes, sizes rounded half up from it
            ratios = [sizes[i] / shape[i] for i in axes]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            scales = [scale if i in axes else 1.0 for i in range(rank)]
            sizes = [int(scale * shape[i] + 0.5) if i in axes else shape[i] for i in range(rank)]
    else:
        scales = [1.0 if f is None else f for f in full]
    ctx.call(node, "squeezestudio.onnx_resize", [ctx.ref(node.input[0]), sizes, scales, mode, coordinate, nearest])


LAYER_CONVERTERS: dict[str, Converter] = {
    "ConvTranspose": _conv_transpose, "InstanceNormalization": _instance_norm,
    "LayerNormalization": _layer_norm, "LRN": _lrn, "Resize": _resize,
}
