"""Shrink layers to chosen channels: new, smaller Conv2d/BatchNorm/Linear modules.

A plan maps a layer name to the output channels it keeps (``keep_out``, for
pruned convolutions and BatchNorms) and the input positions it keeps
(``keep_in``, for consumers), both in the original indexing. Building the
smaller module from the plan copies the kept slices; :func:`empty_layer`
makes the same shapes without weights, which is what replaying a .sqz needs.
A depthwise convolution (one group per channel) keeps that form: its
channels, inputs and groups shrink together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class LayerCut:
    """What one layer keeps (None: that dimension is unchanged)."""

    keep_out: Optional[list[int]] = None
    keep_in: Optional[list[int]] = None


def is_depthwise(module: nn.Module) -> bool:
    """A convolution with one group per channel (its input channels shrink with its outputs)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and \
        module.groups == module.in_channels == module.out_channels


def new_sizes(module: nn.Module, cut: LayerCut) -> tuple[int, int]:
    """(outputs, inputs) of the shrunken layer; for BatchNorm and depthwise convolutions both are its channels."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) or is_depthwise(module):
        n = _channels(module) if cut.keep_out is None else len(cut.keep_out)
        return n, n
    if isinstance(module, nn.Conv2d):
        out, inp = module.out_channels, module.in_channels
    else:
        out, inp = module.out_features, module.in_features
    return (out if cut.keep_out is None else len(cut.keep_out),
            inp if cut.keep_in is None else len(cut.keep_in))


def _channels(module: nn.Module) -> int:
    return module.num_features if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) else module.out_channels


def empty_layer(module: nn.Module, out: int, inp: int, groups: int = 0) -> nn.Module:
    """A layer like ``module`` (same hyper-parameters) with ``out`` outputs and ``inp`` inputs.

    ``groups`` (a convolution's) defaults to ``out`` for a depthwise convolution and to the
    original groups otherwise. Weights are left uninitialised (built on the meta device, then
    given memory): :func:`shrink` copies every value and a .sqz load fills them, and skipping
    PyTorch's random initialisation saves most of the time of shrinking a large model.
    BatchNorm statistics start at their defaults.
    """
    ref = next(iter(module.parameters()), None)
    with torch.device("meta"):
        new = _like(module, out, inp, groups)
    new = new.to_empty(device=ref.device if ref is not None else "cpu")
    if isinstance(new, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new.reset_parameters()
    return new if ref is None else new.to(ref.dtype)


def _like(module: nn.Module, out: int, inp: int, groups: int) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        groups = groups or (out if is_depthwise(module) else module.groups)
        new: nn.Module = nn.Conv2d(inp, out, module.kernel_size, stride=module.stride, padding=module.padding,
                                   dilation=module.dilation, groups=groups, bias=module.bias is not None,
                                   padding_mode=module.padding_mode)
    elif isinstance(module, nn.Linear):
        new = nn.Linear(inp, out, bias=module.bias is not None)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = type(module)(out, eps=module.eps, momentum=module.momentum, affine=module.affine,
                             track_running_stats=module.track_running_stats)
    else:
        raise TypeError(f"cannot shrink a {type(module).__name__}")
    return new


@torch.no_grad()
def shrink(module: nn.Module, cut: LayerCut) -> nn.Module:
    """The smaller copy of ``module`` keeping the slices ``cut`` names."""
    out, inp = new_sizes(module, cut)
    new = empty_layer(module, out, inp)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        idx = torch.arange(module.num_features) if cut.keep_out is None else torch.tensor(cut.keep_out)
        for name in ("weight", "bias", "running_mean", "running_var"):
            src = getattr(module, name)
            if src is not None:
                getattr(new, name).copy_(src[idx])
        if module.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(module.num_batches_tracked)
        return new
    w = module.weight
    if cut.keep_out is not None:
        w = w[torch.tensor(cut.keep_out)]
    if cut.keep_in is not None:
        w = w[:, torch.tensor(cut.keep_in)]
    new.weight.copy_(w)
    if module.bias is not None:
        new.bias.copy_(module.bias if cut.keep_out is None else module.bias[torch.tensor(cut.keep_out)])
    return new
