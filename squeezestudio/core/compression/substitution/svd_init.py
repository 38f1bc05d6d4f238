"""Data-free starting weights for a replacement, taken from the convolution it replaces.

Low-rank start of a :class:`FireConv`. The squeeze is a 1x1 projection ``P``
(s x in), so squeeze followed by the kxk expand computes the kernel
``W'[o, j, t] P[j, i]``. Reshape the original kernel ``W`` (out, in, kh, kw) to
``M`` (out*kh*kw, in) and take its SVD ``M = U S V^T``: ``P = sqrt(S_r) V_r^T``
and ``W' = U_r sqrt(S_r)`` reshaped back to (out, r, kh, kw) is the best
rank-r approximation (Eckart-Young), exact when r >= rank(M).

The squeeze ReLU. ``ReLU(Px)`` is not ``Px``, so the plain factorisation is
only exact without the ReLU. With the ReLU we spend two squeeze channels per
component: rows ``+p_j`` and ``-p_j`` with expand columns ``+w_j`` and
``-w_j``, because ``ReLU(p x) - ReLU(-p x) = p x``. That keeps the module exact
when ``s >= 2*rank`` at the cost of half the rank for a given ``s``. (A bias
shift ``ReLU(p x + b)`` would keep the full rank but breaks at zero-padded
borders and needs data to choose ``b``.) Squeeze biases start at zero so that
zero padding of the squeeze output equals zero padding of the input.

The 1x1 expand branch (the first e1 output channels) can only represent the
centre tap of ``W'``; the off-centre taps of those channels are lost and are
the approximation error that remains even at full rank. ``pct3x3 = 1`` avoids
it; layer-wise reconstruction (:mod:`.reconstruction`) reduces it with data.

A bypass (``y = x + f(x)``) is handled by factoring ``W - I`` where ``I`` is
the identity on the centre tap, so ``x + f(x)`` starts as ``W x``.

The 1x1 replacement (strategy 1) starts from the centre tap. Summing the taps
instead is exact only for spatially constant inputs and wipes out edge
detectors whose taps sum to zero; the centre tap is exact wherever the
off-centre taps see nothing. With calibration data, least squares (what the
reconstruction converges to, the problem being convex) beats both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from squeezestudio.core.compression.substitution.fire_module import ConvGeometry, FireConv, pointwise_conv_of


@dataclass(frozen=True)
class SvdInitReport:
    """What the low-rank start kept: rank used and the share of ``||W||^2`` it holds."""

    rank: int
    kept_energy: float
    paired: bool


def low_rank_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(P (r, in), W' (out, r, kh, kw), kept_energy)`` with ``W ~= W' * P``."""
    out_ch, in_ch, kh, kw = weight.shape
    m = weight.detach().double().permute(0, 2, 3, 1).reshape(out_ch * kh * kw, in_ch)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    r = max(0, min(rank, s.numel()))
    root = s[:r].sqrt()
    p = root[:, None] * vh[:r]
    w_prime = (u[:, :r] * root[None, :]).reshape(out_ch, kh, kw, r).permute(0, 3, 1, 2)
    total = float((s ** 2).sum())
    kept = float((s[:r] ** 2).sum()) / total if total > 0 else 1.0
    return p.float(), w_prime.contiguous().float(), kept


def residual_kernel(conv: nn.Conv2d, geometry: ConvGeometry) -> torch.Tensor:
    """``W - I`` (identity on the centre tap): what ``f`` must do when ``y = x + f(x)``."""
    w = conv.weight.detach().clone()
    ch, cw = geometry.centre_tap()
    idx = torch.arange(min(w.shape[0], w.shape[1]))
    w[idx, idx, ch, cw] -= 1.0
    return w


@torch.no_grad()
def init_fire_from_conv(fire: FireConv, conv: nn.Conv2d) -> SvdInitReport:
    """Set ``fire``'s weights to the low-rank start from ``conv`` (see module docstring).

    Squeeze channels not used by a component keep their random weights with
    zero expand columns: they do not change the output but can still learn
    during reconstruction or fine-tuning (a zeroed ReLU channel never would).
    """
    geometry = fire.geometry
    weight = residual_kernel(conv, geometry) if fire.bypass else conv.weight.detach()
    s = fire.squeeze_channels
    paired = fire.squeeze_relu and s >= 2
    rank = s // 2 if paired else s
    p, w_prime, kept = low_rank_factors(weight, rank)
    r = p.shape[0]
    if paired:
        p = torch.cat([p, -p], dim=0)
        w_prime = torch.cat([w_prime, -w_prime], dim=1)
    used = p.shape[0]
    dev, dt = fire.squeeze.weight.device, fire.squeeze.weight.dtype
    fire.squeeze.weight[:used, :, 0, 0] = p.to(dev, dt)
    fire.squeeze.bias.zero_()
    full = torch.zeros(geometry.out_channels, s, *geometry.kernel_size, device=dev, dtype=dt)
    full[:, :used] = w_prime.to(dev, dt)
    bias = None if conv.bias is None else conv.bias.detach().to(dev, dt)
    e1 = fire.e1
    ch, cw = geometry.centre_tap()
    if fire.expand1x1 is not None:
        fire.expand1x1.weight.copy_(full[:e1, :, ch:ch + 1, cw:cw + 1])
        if bias is not None and fire.expand1x1.bias is not None:
            fire.expand1x1.bias.copy_(bias[:e1])
    if fire.expand3x3 is not None:
        fire.expand3x3.weight.copy_(full[e1:])
        if bias is not None and fire.expand3x3.bias is not None:
            fire.expand3x3.bias.copy_(bias[e1:])
    return SvdInitReport(rank=r, kept_energy=kept, paired=paired)


@torch.no_grad()
def init_pointwise_from_conv(replacement: nn.Module, conv: nn.Conv2d) -> None:
    """Start a 1x1 replacement (from :func:`make_pointwise`) at ``conv``'s centre tap."""
    target = pointwise_conv_of(replacement)
    kh, kw = conv.weight.shape[-2:]
    ch, cw = (kh - 1) // 2, (kw - 1) // 2
    target.weight.copy_(conv.weight.detach()[:, :, ch:ch + 1, cw:cw + 1])
    if conv.bias is not None and target.bias is not None:
        target.bias.copy_(conv.bias.detach())
