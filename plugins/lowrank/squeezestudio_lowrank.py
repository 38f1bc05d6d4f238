"""Low-rank factorisation: one layer becomes two thinner ones from a truncated SVD.

- ``Linear`` (out x in): ``W ~= (U_r sqrt(S_r)) (sqrt(S_r) V_r^T)`` -> ``Linear(in, r)``
  then ``Linear(r, out)`` (Denton et al. 2014).
- ``Conv2d`` "spatial" (Jaderberg et al. 2014, closed form by SVD as in Tai et
  al. 2016): reshape the kernel to ``(in*kh) x (out*kw)``; a rank-r SVD gives a
  vertical ``kh x 1`` convolution to r channels followed by a horizontal
  ``1 x kw`` one. Padding, stride and dilation are split per axis, so the pair
  computes exactly ``sum_r`` of the rank-1 terms, borders included.
- ``Conv2d`` "channel": reshape to ``out x (in*kh*kw)``; a ``kxk`` convolution
  to r channels followed by a ``1x1`` one.

At full rank the pair equals the original layer (up to float rounding). The
replacement is an ``nn.Sequential`` of ordinary layers, so later methods
(pruning, clustering, quantization) compress the factors like any layer, and
the .sqz codec counts their parameters as ordinary tensors. The substitution
template (:class:`SubstitutionMethod`) does the bookkeeping: it records each
replacement for .sqz replay and keeps the pre-substitution model, so a later
substitution (Fire, depthwise...) on the same model still fits to the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.plugin_api import ArchitectureMismatchError, Substitute, SubstitutionMethod, param


@dataclass(frozen=True)
class LowRankConfig:
    """Knobs of the factorisation."""

    rank: int = param(0, minimum=0, help="rank kept; 0 chooses it from the energy threshold")
    energy: float = param(0.9, minimum=0.01, maximum=1.0,
                          help="share of the squared singular values kept when rank is 0")
    conv_mode: str = param("spatial", choices=("spatial", "channel"),
                           help="spatial: kx1 then 1xk convolutions; channel: kxk to r channels then 1x1")
    min_params: int = param(1000, minimum=0, help="leave layers with fewer weights than this alone")
    only_if_smaller: bool = param(True, help="skip a layer whose factorisation would not have fewer parameters")


def _matrix(module: nn.Module, kind: str) -> torch.Tensor:
    """The weight reshaped so that its SVD gives the two factors of ``kind``."""
    w = module.weight.detach().double()
    if kind == "linear":
        return w
    out_ch, in_ch, kh, kw = w.shape
    if kind == "channel":
        return w.reshape(out_ch, in_ch * kh * kw)
    return w.permute(1, 2, 0, 3).reshape(in_ch * kh, out_ch * kw)  # (c, i) x (o, j)


def kind_of(module: nn.Module, config: LowRankConfig) -> str:
    return "linear" if isinstance(module, nn.Linear) else config.conv_mode


def factor_params(module: nn.Module, kind: str, rank: int) -> int:
    """Weights of the two factors at ``rank`` (the bias is the same before and after)."""
    m = _matrix(module, kind)
    return rank * (m.shape[0] + m.shape[1])


def choose_rank(singular: torch.Tensor, config: LowRankConfig) -> int:
    """``config.rank`` (capped), or the fewest components holding ``energy`` of ``sum s^2``."""
    if config.rank > 0:
        return min(config.rank, singular.numel())
    power = singular ** 2
    total = float(power.sum())
    if total == 0.0:
        return 1
    cumulative = torch.cumsum(power, 0) / total
    return min(int((cumulative < config.energy - 1e-12).sum()) + 1, singular.numel())


def build_factors(module: nn.Module, kind: str, rank: int) -> nn.Sequential:
    """The two uninitialised layers replacing ``module`` at ``rank``."""
    bias = module.bias is not None
    if kind == "linear":
        return nn.Sequential(nn.Linear(module.in_features, rank, bias=False),
                             nn.Linear(rank, module.out_features, bias=bias))
    kh, kw = module.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = module.stride, module.padding, module.dilation
    if kind == "channel":
        return nn.Sequential(
            nn.Conv2d(module.in_channels, rank, (kh, kw), stride=(sh, sw), padding=(ph, pw),
                      dilation=(dh, dw), bias=False),
            nn.Conv2d(rank, module.out_channels, 1, bias=bias))
    return nn.Sequential(
        nn.Conv2d(module.in_channels, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), bias=False),
        nn.Conv2d(rank, module.out_channels, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw), bias=bias))


@torch.no_grad()
def init_from_svd(new: nn.Sequential, module: nn.Module, kind: str, rank: int) -> float:
    """Set the factors ``new`` (built for ``rank``) from the SVD of ``module``; the share of energy kept."""
    u, s, vh = torch.linalg.svd(_matrix(module, kind), full_matrices=False)
    root = s[:rank].sqrt()
    left = u[:, :rank] * root            # rows of the matrix
    right = root[:, None] * vh[:rank]    # columns of the matrix
    first, second = new[0], new[1]
    if kind == "linear":
        first.weight.copy_(right)
        second.weight.copy_(left)
    elif kind == "channel":
        first.weight.copy_(right.reshape(rank, *module.weight.shape[1:]))
        second.weight.copy_(left[:, :, None, None])
    else:
        out_ch, in_ch, kh, kw = module.weight.shape
        first.weight.copy_(left.reshape(in_ch, kh, rank).permute(2, 0, 1)[..., None])
        second.weight.copy_(right.reshape(rank, out_ch, kw).permute(1, 0, 2)[:, :, None, :])
    if module.bias is not None:
        second.bias.copy_(module.bias.detach())
    total = float((s ** 2).sum())
    return float((s[:rank] ** 2).sum()) / total if total > 0 else 1.0


def factorize(module: nn.Module, kind: str, rank: int) -> tuple[nn.Sequential, float]:
    """The replacement at ``rank``, initialised from the SVD, and the share of energy it keeps."""
    rank = max(1, min(rank, min(_matrix(module, kind).shape)))
    new = build_factors(module, kind, rank).to(module.weight.device, module.weight.dtype)
    return new, init_from_svd(new, module, kind, rank)


class LowRankMethod(SubstitutionMethod):
    """Plugin method ``lowrank``: the substitution template with an SVD factorisation."""

    name = "lowrank"
    label = "Low-rank factorisation"
    description = "Replaces a layer by two thinner layers from a truncated SVD of its weight."
    config_class = LowRankConfig
    layer_types = (nn.Conv2d, nn.Linear)
    paper = ("Jaderberg et al., Speeding up Convolutional Neural Networks with Low Rank Expansions, BMVC 2014; "
             "Denton et al., Exploiting Linear Structure Within Convolutional Networks, NeurIPS 2014")

    def applies_to(self, module: nn.Module) -> bool:
        if isinstance(module, nn.Linear):
            return True
        return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
                and not isinstance(module.padding, str))

    def skip_reason(self, module: nn.Module, config: LowRankConfig) -> Optional[str]:
        if not self.applies_to(module):
            return "only Linear and ungrouped zero-padded Conv2d are factorised"
        before = module.weight.numel()
        if before < config.min_params:
            return f"{before} weights < min_params {config.min_params}"
        kind = kind_of(module, config)
        rank = choose_rank(torch.linalg.svdvals(_matrix(module, kind)), config)
        after = factor_params(module, kind, rank)
        if config.only_if_smaller and after >= before:
            return f"rank {rank} needs {after} weights, not fewer than {before}"
        return None

    def build(self, layer: str, module: nn.Module, config: LowRankConfig) -> Substitute:
        kind = kind_of(module, config)
        rank = choose_rank(torch.linalg.svdvals(_matrix(module, kind)), config)
        return Substitute(build_factors(module, kind, rank),
                          {"kind": kind, "rank": rank, "weight_shape": list(module.weight.shape)})

    def init(self, new: nn.Module, old: nn.Module, config: LowRankConfig) -> str:
        kind = kind_of(old, config)
        rank = new[0].weight.shape[0] if kind != "linear" else new[0].out_features  # type: ignore[index]
        kept = init_from_svd(new, old, kind, rank)  # type: ignore[arg-type]
        return f"{kind} rank {rank}, {kept:.1%} of the energy kept"

    def rebuild_layer(self, current: nn.Module, record: dict[str, Any]) -> nn.Module:
        kind, rank = str(record["kind"]), int(record["rank"])
        shape = [int(d) for d in record["weight_shape"]]
        if not isinstance(current, (nn.Linear, nn.Conv2d)) or list(current.weight.shape) != shape \
                or kind not in ("linear", "spatial", "channel") or rank < 1:
            raise ArchitectureMismatchError(f"layer {record['layer']!r} is not the layer the low-rank "
                                            "factorisation was recorded for")
        return build_factors(current, kind, rank)
