"""The data-free low-rank start: exact where the maths says so, best-rank otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.substitution.fire_module import ConvGeometry, make_fire, make_pointwise
from squeezestudio.core.compression.substitution.svd_init import (
    init_fire_from_conv, init_pointwise_from_conv, low_rank_factors)

GEOMETRIES = [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 1), (3, 1, 2, 2), (5, 1, 2, 1), (5, 2, 0, 1)]


def _conv(in_ch: int, out_ch: int, kernel, stride, padding, dilation, bias=True) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=bias)


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_full_rank_fire_equals_the_conv(kernel, stride, padding, dilation, bias):
    """No squeeze ReLU, s >= rank(M) = in_channels, pct3x3 = 1: exact up to float error."""
    conv = _conv(6, 8, kernel, stride, padding, dilation, bias)
    fire = make_fire(ConvGeometry.from_conv(conv), 6, 0, 8, squeeze_relu=False)
    init_fire_from_conv(fire, conv)
    x = torch.randn(3, 6, 12, 11)
    assert torch.allclose(fire(x), conv(x), atol=1e-5)


@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
def test_paired_relu_fire_equals_the_conv_with_twice_the_rank(kernel, stride, padding, dilation):
    """With the squeeze ReLU, s >= 2 * rank keeps the start exact (+p / -p channel pairs)."""
    conv = _conv(5, 8, kernel, stride, padding, dilation)
    fire = make_fire(ConvGeometry.from_conv(conv), 10, 0, 8, squeeze_relu=True)
    report = init_fire_from_conv(fire, conv)
    assert report.paired and report.rank == 5
    x = torch.randn(3, 5, 12, 11)
    assert torch.allclose(fire(x), conv(x), atol=1e-5)
    plain = make_fire(ConvGeometry.from_conv(conv), 5, 0, 8, squeeze_relu=True)
    plain.squeeze_relu = False  # same weights, then switch the ReLU back on: no longer exact
    init_fire_from_conv(plain, conv)
    plain.squeeze_relu = True
    assert not torch.allclose(plain(x), conv(x), atol=1e-3)


def test_bypass_start_is_exact_too():
    conv = _conv(6, 6, 3, 1, 1, 1)
    fire = make_fire(ConvGeometry.from_conv(conv), 12, 0, 6, bypass=True, squeeze_relu=True)
    init_fire_from_conv(fire, conv)
    x = torch.randn(2, 6, 9, 9)
    assert torch.allclose(fire(x), conv(x), atol=1e-5)


def test_error_falls_with_rank_and_matches_the_discarded_energy():
    torch.manual_seed(4)
    weight = torch.randn(8, 6, 3, 3)
    errors = []
    for rank in range(1, 7):
        p, w_prime, kept = low_rank_factors(weight, rank)
        approx = torch.einsum("ojhw,ji->oihw", w_prime, p)
        rel = float(((approx - weight) ** 2).sum() / (weight ** 2).sum())
        assert rel == pytest.approx(1.0 - kept, abs=1e-5)
        errors.append(rel)
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-10


def test_1x1_branch_keeps_the_centre_taps_and_bias_goes_to_the_expands():
    conv = _conv(4, 6, 3, 1, 1, 1)
    fire = make_fire(ConvGeometry.from_conv(conv), 4, 2, 4, squeeze_relu=False)
    init_fire_from_conv(fire, conv)
    composite1 = torch.einsum("oj,ji->oi", fire.expand1x1.weight[:, :, 0, 0], fire.squeeze.weight[:, :, 0, 0])
    assert torch.allclose(composite1, conv.weight[:2, :, 1, 1], atol=1e-5)
    assert torch.allclose(fire.expand1x1.bias, conv.bias[:2])
    assert torch.allclose(fire.expand3x3.bias, conv.bias[2:])
    assert torch.count_nonzero(fire.squeeze.bias) == 0


def test_spare_squeeze_channels_stay_trainable_without_changing_the_output():
    conv = _conv(3, 4, 3, 1, 1, 1)  # rank 3, paired needs 6 of the 9 channels
    fire = make_fire(ConvGeometry.from_conv(conv), 9, 0, 4, squeeze_relu=True)
    init_fire_from_conv(fire, conv)
    spare = fire.squeeze.weight[6:]
    assert torch.count_nonzero(spare) > 0
    assert torch.count_nonzero(fire.expand3x3.weight[:, 6:]) == 0
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(fire(x), conv(x), atol=1e-5)


def test_pointwise_start_is_the_centre_tap():
    conv = _conv(4, 5, 5, 2, 0, 1)
    replacement = make_pointwise(ConvGeometry.from_conv(conv))
    init_pointwise_from_conv(replacement, conv)
    assert torch.equal(replacement.conv.weight[:, :, 0, 0], conv.weight[:, :, 2, 2])
    assert torch.equal(replacement.conv.bias, conv.bias)
