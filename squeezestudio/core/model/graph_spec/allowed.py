"""The allow-lists: which torch modules, functions and tensor methods a graph may use.

Rebuilding a described graph only ever instantiates a module type listed in
:data:`MODULES` (with constructor arguments read from the description) and
only calls functions in :data:`FUNCTIONS` or tensor methods in
:data:`METHODS`. Everything else is refused, so a description is data, not
code.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from squeezestudio.core.model.graph_spec.onnx_functions import ONNX_FUNCTIONS
from squeezestudio.core.model.graph_spec.onnx_math_functions import MATH_FUNCTIONS
from squeezestudio.core.model.graph_spec.onnx_nn_functions import NN_FUNCTIONS

_CONV = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
         "groups", "padding_mode"]
_INPLACE = ["inplace"]

# type name -> (class, constructor arguments read from attributes of the same name,
#               whether a ``bias`` flag is derived from ``module.bias is not None``)
MODULES: dict[str, tuple[type[nn.Module], list[str], bool]] = {
    "Conv1d": (nn.Conv1d, _CONV, True),
    "Conv2d": (nn.Conv2d, _CONV, True),
    "Conv3d": (nn.Conv3d, _CONV, True),
    "ConvTranspose1d": (nn.ConvTranspose1d, _CONV + ["output_padding"], True),
    "ConvTranspose2d": (nn.ConvTranspose2d, _CONV + ["output_padding"], True),
    "ConvTranspose3d": (nn.ConvTranspose3d, _CONV + ["output_padding"], True),
    "Linear": (nn.Linear, ["in_features", "out_features"], True),
    "BatchNorm1d": (nn.BatchNorm1d, ["num_features", "eps", "momentum", "affine", "track_running_stats"], False),
    "BatchNorm2d": (nn.BatchNorm2d, ["num_features", "eps", "momentum", "affine", "track_running_stats"], False),
    "BatchNorm3d": (nn.BatchNorm3d, ["num_features", "eps", "momentum", "affine", "track_running_stats"], False),
    "InstanceNorm1d": (nn.InstanceNorm1d, ["num_features", "eps", "momentum", "affine", "track_running_stats"],
                       False),
    "InstanceNorm2d": (nn.InstanceNorm2d, ["num_features", "eps", "momentum", "affine", "track_running_stats"],
                       False),
    "InstanceNorm3d": (nn.InstanceNorm3d, ["num_features", "eps", "momentum", "affine", "track_running_stats"],
                       False),
    "GroupNorm": (nn.GroupNorm, ["num_groups", "num_channels", "eps", "affine"], False),
    "LayerNorm": (nn.LayerNorm, ["normalized_shape", "eps", "elementwise_affine"], True),
    "ReLU": (nn.ReLU, _INPLACE, False),
    "ReLU6": (nn.ReLU6, _INPLACE, False),
    "SiLU": (nn.SiLU, _INPLACE, False),
    "Hardswish": (nn.Hardswish, _INPLACE, False),
    "Hardsigmoid": (nn.Hardsigmoid, _INPLACE, False),
    "Hardtanh": (nn.Hardtanh, ["min_val", "max_val", "inplace"], False),
    "LeakyReLU": (nn.LeakyReLU, ["negative_slope", "inplace"], False),
    "ELU": (nn.ELU, ["alpha", "inplace"], False),
    "PReLU": (nn.PReLU, ["num_parameters"], False),
    "GELU": (nn.GELU, ["approximate"], False),
    "Sigmoid": (nn.Sigmoid, [], False),
    "Tanh": (nn.Tanh, [], False),
    "Identity": (nn.Identity, [], False),
    "Softmax": (nn.Softmax, ["dim"], False),
    "LogSoftmax": (nn.LogSoftmax, ["dim"], False),
    "Dropout": (nn.Dropout, ["p", "inplace"], False),
    "Dropout2d": (nn.Dropout2d, ["p", "inplace"], False),
    "Flatten": (nn.Flatten, ["start_dim", "end_dim"], False),
    "MaxPool1d": (nn.MaxPool1d, ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"], False),
    "MaxPool2d": (nn.MaxPool2d, ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"], False),
    "MaxPool3d": (nn.MaxPool3d, ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"], False),
    "AvgPool1d": (nn.AvgPool1d, ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"], False),
    "AvgPool2d": (nn.AvgPool2d, ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                 "divisor_override"], False),
    "AvgPool3d": (nn.AvgPool3d, ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                 "divisor_override"], False),
    "AdaptiveAvgPool1d": (nn.AdaptiveAvgPool1d, ["output_size"], False),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ["output_size"], False),
    "AdaptiveAvgPool3d": (nn.AdaptiveAvgPool3d, ["output_size"], False),
    "AdaptiveMaxPool1d": (nn.AdaptiveMaxPool1d, ["output_size", "return_indices"], False),
    "AdaptiveMaxPool3d": (nn.AdaptiveMaxPool3d, ["output_size", "return_indices"], False),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ["output_size", "return_indices"], False),
    "ZeroPad2d": (nn.ZeroPad2d, ["padding"], False),
    "ConstantPad2d": (nn.ConstantPad2d, ["padding", "value"], False),
    "ReflectionPad2d": (nn.ReflectionPad2d, ["padding"], False),
    "ReplicationPad2d": (nn.ReplicationPad2d, ["padding"], False),
    "ChannelShuffle": (nn.ChannelShuffle, ["groups"], False),
    "PixelShuffle": (nn.PixelShuffle, ["upscale_factor"], False),
}
MODULE_TYPE_NAMES: dict[type, str] = {cls: name for name, (cls, _, _) in MODULES.items()}

_SAFE_ATTRIBUTES = frozenset({"shape", "dtype", "ndim", "device", "T"})


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to harmless tensor attributes (what ``x.shape`` traces to)."""
    if name not in _SAFE_ATTRIBUTES:
        raise ValueError(f"attribute {name!r} is not allowed in a graph description")
    return getattr(obj, name)


def _named(module: Any, names: str) -> dict[str, Callable[..., Any]]:
    return {f"{module.__name__}.{n}": getattr(module, n) for n in names.split()}


FUNCTIONS: dict[str, Callable[..., Any]] = {
    **_named(torch, "relu sigmoid tanh flatten cat stack add sub mul div matmul mm bmm addmm mean sum "
                    "reshape transpose permute squeeze unsqueeze clamp softmax log_softmax chunk split "
                    "conv2d max_pool2d adaptive_avg_pool1d batch_norm exp sqrt neg abs "
                    "channel_shuffle narrow amax erf pow sign floor where einsum log reciprocal amin "
                    "ceil round sin cos tan asin acos atan sinh cosh asinh acosh atanh eq gt lt ge le "
                    "logical_not logical_and logical_or logical_xor maximum minimum"),
    **_named(F, "relu relu6 leaky_relu hardtanh hardsigmoid hardswish silu gelu elu sigmoid tanh "
                "softmax log_softmax dropout dropout2d linear conv2d batch_norm layer_norm group_norm "
                "pad max_pool2d avg_pool2d adaptive_avg_pool2d adaptive_max_pool2d interpolate "
                "pixel_shuffle softplus softsign mish celu"),
    **_named(operator, "add sub mul truediv floordiv neg matmul getitem pos mod"),
    "builtins.getattr": _safe_getattr,
    **ONNX_FUNCTIONS,
    **MATH_FUNCTIONS,
    **NN_FUNCTIONS,
}
# fx records the callable itself; map it back to its allow-listed name.
FUNCTION_NAMES: dict[int, str] = {}
for _name, _fn in FUNCTIONS.items():
    FUNCTION_NAMES.setdefault(id(_fn), _name)
FUNCTION_NAMES[id(builtins.getattr)] = "builtins.getattr"

METHODS = frozenset(
    "view reshape flatten size mean sum permute transpose contiguous unsqueeze squeeze chunk split "
    "relu sigmoid tanh softmax log_softmax add mul sub div clamp expand expand_as view_as reshape_as "
    "matmul neg pow exp sqrt abs dim numel flip amax narrow repeat t float".split())


def module_constructor_args(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments that rebuild ``module`` (its type must be allow-listed)."""
    name = MODULE_TYPE_NAMES.get(type(module))
    if name is None:
        raise ValueError(f"module type {type(module).__name__} is not allow-listed")
    _, attrs, has_bias = MODULES[name]
    kwargs = {a: getattr(module, a) for a in attrs}
    if has_bias:
        kwargs["bias"] = getattr(module, "bias", None) is not None
    if name == "LayerNorm":
        kwargs["elementwise_affine"] = module.weight is not None
    return kwargs
