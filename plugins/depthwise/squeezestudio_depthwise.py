"""Depthwise-separable substitution: a kxk convolution becomes depthwise kxk + pointwise 1x1.

Howard et al., "MobileNets" (2017). A standard convolution costs
``out * in * k^2`` weights; the separable pair costs ``in * m * k^2 + out * in * m``
for a depth multiplier ``m``. Start (data-free): for each input channel c the
slice ``W[:, c]`` is an ``out x k^2`` matrix; its rank-``m`` SVD
``sum_j s_j u_j v_j^T`` gives the depthwise filters ``sqrt(s_j) v_j`` (channels
``c*m + j``) and the pointwise columns ``sqrt(s_j) u_j``. The pair is exact
when every slice has rank <= m (always when ``m >= min(out, k^2)``). With
calibration images on ``state.calibration``, the pair is then fitted to the
original layer's outputs (layer-wise reconstruction, shared with the Fire method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.plugin_api import ArchitectureMismatchError, Substitute, SubstitutionMethod, param


@dataclass(frozen=True)
class DepthwiseConfig:
    """Knobs of the substitution."""

    multiplier: int = param(1, minimum=1, maximum=16, help="depthwise channels per input channel (MobileNet's depth multiplier)")
    reconstruct_steps: int = param(200, minimum=0, maximum=100_000,
                                   help="Adam steps fitting the pair to calibration data (0: SVD start only)")


def geometry(conv: nn.Conv2d) -> dict[str, Any]:
    """The JSON description of a convolution's hyper-parameters."""
    return {"in": conv.in_channels, "out": conv.out_channels, "kernel": list(conv.kernel_size),
            "stride": list(conv.stride), "padding": list(conv.padding), "dilation": list(conv.dilation),
            "bias": conv.bias is not None}


def build_separable(g: dict[str, Any], multiplier: int) -> nn.Sequential:
    mid = g["in"] * multiplier
    return nn.Sequential(
        nn.Conv2d(g["in"], mid, tuple(g["kernel"]), stride=tuple(g["stride"]), padding=tuple(g["padding"]),
                  dilation=tuple(g["dilation"]), groups=g["in"], bias=False),
        nn.Conv2d(mid, g["out"], 1, bias=bool(g["bias"])))


@torch.no_grad()
def init_from_conv(pair: nn.Sequential, conv: nn.Conv2d, multiplier: int) -> float:
    """Set the pair to the per-input-channel rank-``m`` SVD of ``conv``; returns the energy kept."""
    out_ch, in_ch, kh, kw = conv.weight.shape
    slices = conv.weight.detach().double().permute(1, 0, 2, 3).reshape(in_ch, out_ch, kh * kw)
    u, s, vh = torch.linalg.svd(slices, full_matrices=False)  # (in, out, r), (in, r), (in, r, k^2)
    r = min(multiplier, s.shape[1])
    depth = torch.zeros(in_ch, multiplier, kh * kw, dtype=torch.float64)
    point = torch.zeros(out_ch, in_ch, multiplier, dtype=torch.float64)
    root = s[:, :r].sqrt()
    depth[:, :r] = root[:, :, None] * vh[:, :r]
    point[:, :, :r] = (u[:, :, :r] * root[:, None, :]).permute(1, 0, 2)
    pair[0].weight.copy_(depth.reshape(in_ch * multiplier, 1, kh, kw))
    pair[1].weight.copy_(point.reshape(out_ch, in_ch * multiplier, 1, 1))
    if conv.bias is not None:
        pair[1].bias.copy_(conv.bias.detach())
    total = float((s ** 2).sum())
    return float((s[:, :r] ** 2).sum()) / total if total > 0 else 1.0


class DepthwiseSeparableMethod(SubstitutionMethod):
    """Plugin method ``depthwise``: the substitution template with MobileNet's layer pair."""

    name = "depthwise"
    label = "Depthwise-separable substitution"
    description = "Replaces a kxk convolution by a depthwise kxk and a pointwise 1x1 convolution, as in MobileNets."
    config_class = DepthwiseConfig
    layer_types = (nn.Conv2d,)
    paper = "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications, 2017"

    def applies_to(self, module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.kernel_size != (1, 1)
                and module.padding_mode == "zeros" and not isinstance(module.padding, str))

    def skip_reason(self, module: nn.Module, config: DepthwiseConfig) -> Optional[str]:
        return None if self.applies_to(module) else "it is not an ungrouped zero-padded kxk Conv2d"

    def build(self, layer: str, module: nn.Module, config: DepthwiseConfig) -> Substitute:
        g = geometry(module)  # type: ignore[arg-type]
        return Substitute(build_separable(g, config.multiplier), {"conv": g, "multiplier": config.multiplier})

    def init(self, new: nn.Module, old: nn.Module, config: DepthwiseConfig) -> str:
        kept = init_from_conv(new, old, config.multiplier)  # type: ignore[arg-type]
        return f"SVD start keeps {kept:.1%} of the energy"

    def rebuild_layer(self, current: nn.Module, record: dict[str, Any]) -> nn.Module:
        g, m = dict(record["conv"]), int(record["multiplier"])
        if not isinstance(current, nn.Conv2d) or geometry(current) != g or m < 1:
            raise ArchitectureMismatchError(f"layer {record['layer']!r} is not the convolution the depthwise "
                                            "substitution was recorded for")
        return build_separable(g, m)
