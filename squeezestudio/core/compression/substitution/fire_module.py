"""Drop-in replacements for a kxk convolution: a Fire module, or a 1x1 convolution.

Both replacements produce exactly the output shape of the convolution they
replace, for any stride, padding and dilation (groups 1), so the layers after
it (BatchNorm, ReLU, the next convolution) stay untouched.

Where the stride goes: on both expand convolutions, not on the squeeze. With
the stride on the squeeze the kxk taps would land on a grid ``stride`` times
coarser than the original's and the composite could no longer equal a strided
kxk convolution (the SVD start would not be exact). The price is that the
squeeze runs at full resolution.

The 1x1 expand branch stands for the kxk kernel's centre tap, so it must read
the input position the centre tap reads. For a kernel ``k``, padding ``p``,
dilation ``d`` and centre tap ``c = (k - 1) // 2`` that is a shift of
``p - d*c`` on the left and ``p - d*(k - 1 - c)`` on the right: positive means
zero padding, negative means cropping (:class:`TapAlignment`). Even kernels
get an asymmetric alignment so the spatial sizes still match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from squeezestudio.core.errors import RecipeError

Pair = tuple[int, int]
IntOrPair = Union[int, tuple[int, int]]


def _pair(value: IntOrPair) -> Pair:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


@dataclass(frozen=True)
class ConvGeometry:
    """The hyper-parameters of a Conv2d that a replacement must honour."""

    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    bias: bool = True

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "ConvGeometry":
        """Read a Conv2d; raises :class:`RecipeError` for one we cannot replace."""
        reason = unsupported_reason(conv)
        if reason is not None:
            raise RecipeError(f"this convolution cannot be replaced: {reason}")
        return cls(in_channels=conv.in_channels, out_channels=conv.out_channels,
                   kernel_size=_pair(conv.kernel_size), stride=_pair(conv.stride),
                   padding=_numeric_padding(conv), dilation=_pair(conv.dilation),
                   bias=conv.bias is not None)

    @property
    def is_pointwise(self) -> bool:
        return self.kernel_size == (1, 1)

    def alignment(self) -> tuple[Pair, Pair]:
        """``((top, bottom), (left, right))`` shifts that put a 1x1 conv on the centre tap."""
        sides = []
        for k, p, d in zip(self.kernel_size, self.padding, self.dilation):
            c = (k - 1) // 2
            sides.append((p - d * c, p - d * (k - 1 - c)))
        return sides[0], sides[1]

    def centre_tap(self) -> Pair:
        return ((self.kernel_size[0] - 1) // 2, (self.kernel_size[1] - 1) // 2)

    def to_dict(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation), "bias": self.bias}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConvGeometry":
        return cls(in_channels=int(d["in_channels"]), out_channels=int(d["out_channels"]),
                   kernel_size=_pair(tuple(d["kernel_size"])), stride=_pair(tuple(d["stride"])),
                   padding=_pair(tuple(d["padding"])), dilation=_pair(tuple(d["dilation"])),
                   bias=bool(d["bias"]))


def _numeric_padding(conv: nn.Conv2d) -> Pair:
    pad = conv.padding
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        # "same": symmetric only when d*(k-1) is even (checked in unsupported_reason).
        return tuple(d * (k - 1) // 2 for k, d in zip(_pair(conv.kernel_size), _pair(conv.dilation)))  # type: ignore[return-value]
    return _pair(pad)


def unsupported_reason(conv: nn.Module) -> Optional[str]:
    """Why ``conv`` cannot be replaced (None when it can)."""
    if not isinstance(conv, nn.Conv2d):
        return "it is not a Conv2d"
    if conv.groups != 1:
        return f"it is a grouped convolution (groups={conv.groups})"
    if conv.padding_mode != "zeros":
        return f"it pads with {conv.padding_mode!r} instead of zeros"
    if isinstance(conv.padding, str) and conv.padding == "same":
        for k, d in zip(_pair(conv.kernel_size), _pair(conv.dilation)):
            if (d * (k - 1)) % 2:
                return "its 'same' padding is asymmetric (even kernel)"
    return None


class TapAlignment(nn.Module):
    """Zero-pads (positive shift) or crops (negative shift) each spatial side.

    Slicing instead of negative padding keeps the ONNX export simple.
    """

    def __init__(self, rows: Pair, cols: Pair) -> None:
        super().__init__()
        self.rows = rows
        self.cols = cols

    @property
    def is_identity(self) -> bool:
        return self.rows == (0, 0) and self.cols == (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = self.rows, self.cols
        pads = (max(left, 0), max(right, 0), max(top, 0), max(bottom, 0))
        if any(pads):
            x = F.pad(x, pads)
        if min(top, bottom, left, right) < 0:
            h, w = x.shape[-2], x.shape[-1]
            x = x[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
        return x

    def extra_repr(self) -> str:
        return f"rows={self.rows}, cols={self.cols}"


def bypass_allowed(geometry: ConvGeometry) -> bool:
    """True when ``x + f(x)`` is well defined and the identity sits on a kernel tap.

    Needs in == out channels, stride 1, and an odd kernel padded by exactly
    ``d*(k-1)/2`` so output and input have the same size for every input size
    and the identity can be folded into the centre tap at initialisation.
    """
    if geometry.in_channels != geometry.out_channels or geometry.stride != (1, 1):
        return False
    for k, p, d in zip(geometry.kernel_size, geometry.padding, geometry.dilation):
        if k % 2 == 0 or p != d * (k - 1) // 2:
            return False
    return True


def fire_channels(out_channels: int, squeeze_ratio: float, pct3x3: float) -> tuple[int, int, int]:
    """``(squeeze, e1, e3)`` for the SqueezeNet knobs SR and pct3x3."""
    squeeze = max(1, int(round(squeeze_ratio * out_channels)))
    e3 = min(out_channels, max(0, int(round(pct3x3 * out_channels))))
    return squeeze, out_channels - e3, e3


def fire_parameter_count(geometry: ConvGeometry, squeeze: int, e1: int, e3: int) -> int:
    """Parameters of the :class:`FireConv` replacing ``geometry`` (squeeze has a bias)."""
    kh, kw = geometry.kernel_size
    count = geometry.in_channels * squeeze + squeeze + squeeze * e1 + squeeze * e3 * kh * kw
    if geometry.bias:
        count += e1 + e3
    return count


class FireConv(nn.Module):
    """SqueezeNet's squeeze/expand block standing in for one kxk convolution.

    ``squeeze`` (1x1, in -> s, always with a bias) is followed by a ReLU when
    ``squeeze_relu``; ``expand1x1`` (s -> e1) and ``expand3x3`` (s -> e3, the
    original kernel size, stride, padding and dilation) are concatenated in
    that order, so output channel ``o < e1`` comes from the 1x1 branch. A
    branch with zero channels is absent (its attribute is None).

    ``expand3x3`` keeps that name whatever the kernel size (it is "the spatial
    branch"): SqueezeNet, torchvision and our zoo use it, so one recipe rule
    such as ``*.expand3x3`` reaches both zoo Fire modules and substituted ones.

    No ReLU after the expand by default (``expand_relu=False``): only the
    convolution is replaced, and whatever followed it (BatchNorm, ReLU) still
    follows, so the module must output what a convolution would, including
    negative values. ``bypass`` adds the input (the ResSquVGG idea); it is only
    accepted where :func:`bypass_allowed` says so.

    All three sub-layers are plain ``nn.Conv2d``, so pruning, clustering and
    quantization treat them like any other convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: IntOrPair = 0, dilation: IntOrPair = 1, *,
                 squeeze: int, e1: int, e3: int, bypass: bool = False, squeeze_relu: bool = True,
                 expand_relu: bool = False, bias: bool = True) -> None:
        super().__init__()
        geometry = ConvGeometry(in_channels, out_channels, _pair(kernel_size), _pair(stride),
                                _pair(padding), _pair(dilation), bias)
        if squeeze < 1 or e1 < 0 or e3 < 0 or e1 + e3 != out_channels:
            raise RecipeError(f"a Fire module needs squeeze >= 1 and e1 + e3 == {out_channels} "
                              f"output channels, not squeeze={squeeze}, e1={e1}, e3={e3}")
        if bypass and not bypass_allowed(geometry):
            raise RecipeError("a bypass needs equal input and output channels, stride 1 and "
                              "'same' padding with an odd kernel")
        self.geometry = geometry
        self.squeeze_relu = squeeze_relu
        self.expand_relu = expand_relu
        self.bypass = bypass
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1, bias=True)
        self.expand1x1: Optional[nn.Conv2d] = None
        self.expand3x3: Optional[nn.Conv2d] = None
        self.align1x1: Optional[TapAlignment] = None
        if e1 > 0:
            rows, cols = geometry.alignment()
            self.align1x1 = TapAlignment(rows, cols)
            self.expand1x1 = nn.Conv2d(squeeze, e1, 1, stride=geometry.stride, bias=bias)
        if e3 > 0:
            self.expand3x3 = nn.Conv2d(squeeze, e3, geometry.kernel_size, stride=geometry.stride,
                                       padding=geometry.padding, dilation=geometry.dilation, bias=bias)

    @property
    def squeeze_channels(self) -> int:
        return self.squeeze.out_channels

    @property
    def e1(self) -> int:
        return 0 if self.expand1x1 is None else self.expand1x1.out_channels

    @property
    def e3(self) -> int:
        return 0 if self.expand3x3 is None else self.expand3x3.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.squeeze(x)
        if self.squeeze_relu:
            z = torch.relu(z)
        outs = []
        if self.expand1x1 is not None and self.align1x1 is not None:
            outs.append(self.expand1x1(self.align1x1(z)))
        if self.expand3x3 is not None:
            outs.append(self.expand3x3(z))
        y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        if self.expand_relu:
            y = torch.relu(y)
        if self.bypass:
            y = y + x
        return y

    def extra_repr(self) -> str:
        return (f"squeeze_relu={self.squeeze_relu}, expand_relu={self.expand_relu}, "
                f"bypass={self.bypass}")


class PointwiseConv(nn.Module):
    """SqueezeNet strategy 1 (kxk -> 1x1) where a plain Conv2d cannot line up.

    A 1x1 Conv2d reproduces a kxk convolution's grid only when the centre-tap
    shift is symmetric and non-negative (e.g. 3x3 with padding 1); otherwise
    (padding 0, even kernels) this wraps ``conv`` with a :class:`TapAlignment`.
    """

    def __init__(self, geometry: ConvGeometry) -> None:
        super().__init__()
        rows, cols = geometry.alignment()
        self.align = TapAlignment(rows, cols)
        self.conv = nn.Conv2d(geometry.in_channels, geometry.out_channels, 1,
                              stride=geometry.stride, bias=geometry.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.align(x))


def make_pointwise(geometry: ConvGeometry) -> nn.Module:
    """The 1x1 replacement: a plain Conv2d when possible, else :class:`PointwiseConv`."""
    rows, cols = geometry.alignment()
    if rows[0] == rows[1] >= 0 and cols[0] == cols[1] >= 0:
        return nn.Conv2d(geometry.in_channels, geometry.out_channels, 1, stride=geometry.stride,
                         padding=(rows[0], cols[0]), bias=geometry.bias)
    return PointwiseConv(geometry)


def pointwise_conv_of(module: nn.Module) -> nn.Conv2d:
    """The Conv2d inside a replacement made by :func:`make_pointwise`."""
    return module.conv if isinstance(module, PointwiseConv) else module  # type: ignore[return-value]


def make_fire(geometry: ConvGeometry, squeeze: int, e1: int, e3: int, *, bypass: bool = False,
              squeeze_relu: bool = True, expand_relu: bool = False) -> FireConv:
    """A :class:`FireConv` with ``geometry``'s hyper-parameters (default init)."""
    return FireConv(geometry.in_channels, geometry.out_channels, geometry.kernel_size,
                    geometry.stride, geometry.padding, geometry.dilation, squeeze=squeeze,
                    e1=e1, e3=e3, bypass=bypass, squeeze_relu=squeeze_relu,
                    expand_relu=expand_relu, bias=geometry.bias)
