"""FireConv and the 1x1 replacement: shapes, branch alignment, bypass rules, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.substitution.fire_module import (
    ConvGeometry, FireConv, PointwiseConv, bypass_allowed, fire_channels, fire_parameter_count,
    make_fire, make_pointwise, unsupported_reason)
from squeezestudio.core.errors import RecipeError

# (kernel, stride, padding, dilation)
GEOMETRIES = [
    (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 1), (3, 2, 0, 1), (3, 1, 2, 1), (3, 1, 2, 2),
    (5, 1, 2, 1), (5, 2, 0, 1), (5, 1, 1, 2), (4, 1, 1, 1), (2, 2, 0, 1), ((3, 5), (1, 2), (1, 0), 1),
]


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
def test_fire_and_pointwise_output_shapes_match_the_conv(kernel, stride, padding, dilation, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, kernel, stride, padding, dilation, bias=bias)
    geometry = ConvGeometry.from_conv(conv)
    x = torch.randn(2, 5, 13, 12)
    expected = conv(x).shape
    for e1 in (0, 3, 7):
        fire = make_fire(geometry, 3, e1, 7 - e1)
        assert fire(x).shape == expected
    assert make_pointwise(geometry)(x).shape == expected


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
def test_1x1_branch_reads_the_centre_tap(kernel, stride, padding, dilation):
    """A kernel that is zero off its centre tap is reproduced exactly by the 1x1 paths."""
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, kernel, stride, padding, dilation)
    geometry = ConvGeometry.from_conv(conv)
    ch, cw = geometry.centre_tap()
    with torch.no_grad():
        centre = conv.weight[:, :, ch, cw].clone()
        conv.weight.zero_()
        conv.weight[:, :, ch, cw] = centre
    x = torch.randn(2, 4, 11, 10)
    fire = make_fire(geometry, 4, 6, 0, squeeze_relu=False)
    pointwise = make_pointwise(geometry)
    with torch.no_grad():
        fire.squeeze.weight.copy_(torch.eye(4)[:, :, None, None])
        fire.squeeze.bias.zero_()
        fire.expand1x1.weight.copy_(centre[:, :, None, None])
        fire.expand1x1.bias.copy_(conv.bias)
        inner = pointwise.conv if isinstance(pointwise, PointwiseConv) else pointwise
        inner.weight.copy_(centre[:, :, None, None])
        inner.bias.copy_(conv.bias)
    assert torch.allclose(fire(x), conv(x), atol=1e-5)
    assert torch.allclose(pointwise(x), conv(x), atol=1e-5)


def test_pointwise_is_a_plain_conv_when_the_centre_tap_lines_up():
    aligned = make_pointwise(ConvGeometry.from_conv(nn.Conv2d(3, 4, 3, padding=1)))
    shifted = make_pointwise(ConvGeometry.from_conv(nn.Conv2d(3, 4, 3, padding=0)))
    assert type(aligned) is nn.Conv2d and aligned.kernel_size == (1, 1)
    assert isinstance(shifted, PointwiseConv)


def test_empty_branches_are_dropped_and_names_are_conv_layers():
    geometry = ConvGeometry(8, 8, (3, 3), padding=(1, 1))
    only3 = make_fire(geometry, 2, 0, 8)
    only1 = make_fire(geometry, 2, 8, 0)
    assert only3.expand1x1 is None and isinstance(only3.expand3x3, nn.Conv2d)
    assert only1.expand3x3 is None and isinstance(only1.expand1x1, nn.Conv2d)
    both = make_fire(geometry, 2, 3, 5)
    convs = {name for name, m in both.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs == {"squeeze", "expand1x1", "expand3x3"}
    assert {n for n, _ in only3.named_parameters()} == {
        "squeeze.weight", "squeeze.bias", "expand3x3.weight", "expand3x3.bias"}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ratio,pct", [(0.125, 0.5), (0.25, 0.0), (0.5, 1.0), (0.01, 0.3), (1.0, 0.75)])
def test_parameter_count_equals_the_formula(bias, ratio, pct):
    geometry = ConvGeometry(12, 16, (5, 3), padding=(2, 1), bias=bias)
    squeeze, e1, e3 = fire_channels(16, ratio, pct)
    fire = make_fire(geometry, squeeze, e1, e3)
    counted = sum(p.numel() for p in fire.parameters())
    kh, kw = 5, 3
    by_hand = 12 * squeeze + squeeze + squeeze * e1 + squeeze * e3 * kh * kw + (16 if bias else 0)
    assert counted == fire_parameter_count(geometry, squeeze, e1, e3) == by_hand


def test_fire_channels_follow_the_squeezenet_knobs():
    assert fire_channels(64, 0.125, 0.5) == (8, 32, 32)
    assert fire_channels(10, 0.01, 0.5) == (1, 5, 5)  # the squeeze never goes below one channel
    assert fire_channels(10, 0.3, 1.0) == (3, 0, 10)
    assert fire_channels(10, 0.3, 0.0) == (3, 10, 0)


def test_bypass_only_where_shapes_allow():
    assert bypass_allowed(ConvGeometry(8, 8, (3, 3), padding=(1, 1)))
    assert bypass_allowed(ConvGeometry(8, 8, (3, 3), padding=(2, 2), dilation=(2, 2)))
    assert bypass_allowed(ConvGeometry(8, 8, (5, 5), padding=(2, 2)))
    assert not bypass_allowed(ConvGeometry(8, 16, (3, 3), padding=(1, 1)))  # channels differ
    assert not bypass_allowed(ConvGeometry(8, 8, (3, 3), stride=(2, 2), padding=(1, 1)))
    assert not bypass_allowed(ConvGeometry(8, 8, (3, 3), padding=(0, 0)))  # output shrinks
    assert not bypass_allowed(ConvGeometry(8, 8, (4, 4), padding=(1, 1)))  # even kernel
    with pytest.raises(RecipeError, match="bypass"):
        FireConv(8, 8, 3, 2, 1, squeeze=2, e1=4, e3=4, bypass=True)


def test_bypass_adds_the_input():
    torch.manual_seed(2)
    with_bypass = FireConv(6, 6, 3, 1, 1, squeeze=2, e1=3, e3=3, bypass=True)
    without = FireConv(6, 6, 3, 1, 1, squeeze=2, e1=3, e3=3, bypass=False)
    without.load_state_dict(with_bypass.state_dict())
    x = torch.randn(2, 6, 7, 7)
    assert torch.allclose(with_bypass(x), without(x) + x)


def test_no_relu_after_expand_by_default_so_outputs_can_be_negative():
    torch.manual_seed(3)
    fire = FireConv(4, 6, 3, 1, 1, squeeze=3, e1=3, e3=3)
    assert (fire(torch.randn(4, 4, 8, 8)) < 0).any()
    relu_fire = FireConv(4, 6, 3, 1, 1, squeeze=3, e1=3, e3=3, expand_relu=True)
    assert (relu_fire(torch.randn(4, 4, 8, 8)) >= 0).all()


def test_bad_channel_split_and_unsupported_convs_are_reported():
    with pytest.raises(RecipeError, match="e1 \\+ e3"):
        FireConv(4, 6, 3, squeeze=2, e1=2, e3=2)
    assert "grouped" in unsupported_reason(nn.Conv2d(4, 4, 3, groups=2))
    assert "reflect" in unsupported_reason(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    assert unsupported_reason(nn.Conv2d(4, 4, 3, padding="same")) is None
    assert "asymmetric" in unsupported_reason(nn.Conv2d(4, 4, 4, padding="same"))
    with pytest.raises(RecipeError):
        ConvGeometry.from_conv(nn.Conv2d(4, 4, 3, groups=4))


def test_geometry_round_trips_through_a_dict():
    geometry = ConvGeometry.from_conv(nn.Conv2d(3, 5, (3, 5), (2, 1), (1, 2), (1, 2), bias=False))
    assert ConvGeometry.from_dict(geometry.to_dict()) == geometry
    assert geometry.bias is False and geometry.kernel_size == (3, 5)
