"""A second implementation is accepted when it is off by rounding, and refused when it computes something else.

The model below makes its logits as small differences of large terms (a
bias of 1e4 that the next layer's zero-sum rows cancel), so float32 moves
torch's own outputs by about 0.5% of their scale: five times the fixed
tolerance. A correct second implementation, off by as much as torch is,
must then be accepted; one off by 5% of the scale must not; and where
float32 is off by more than 2% of the scale the model is not trusted to tell.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.float_agreement import agrees, float64_output

TOLERANCE = 1e-3


def _cancelling(big: float, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    a, b = nn.Linear(16, 64), nn.Linear(64, 5)
    with torch.no_grad():
        a.weight.normal_(0, 0.05)
        a.bias.fill_(big)
        w = torch.randn(5, 64) * 30.0
        b.weight.copy_(w - w.mean(1, keepdim=True))  # rows sum to zero: the 1e4 cancels exactly in real numbers
        b.bias.zero_()
    return nn.Sequential(a, b).eval()


def _outputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    truth = float64_output(model, x, lambda out: out)
    assert truth is not None
    return x, expected, truth


def test_an_implementation_off_by_float32_rounding_is_accepted():
    model = _cancelling(1e4)
    x, expected, truth = _outputs(model)
    scale = float(expected.abs().max())
    own = float((expected.double() - truth).abs().max())
    assert TOLERANCE * scale < own < 0.02 * scale  # the fixed test alone would refuse a correct export
    # Another correct implementation: as far from the exact result as torch, in other places.
    other = (truth - (expected.double() - truth).flip(0)).float()
    assert float((other - expected).abs().max()) > TOLERANCE * scale
    accepted, why = agrees(model, x, expected, other, TOLERANCE)
    assert accepted and "float32 rounding" in why


def test_an_implementation_that_computes_something_else_is_refused():
    model = _cancelling(1e4)
    x, expected, _ = _outputs(model)
    wrong = expected + 0.05 * float(expected.abs().max())
    accepted, why = agrees(model, x, expected, wrong, TOLERANCE)
    assert not accepted and "differ by" in why
    assert not agrees(model, x, expected, expected[:, :4], TOLERANCE)[0]  # another shape


def test_a_model_float32_cannot_compute_keeps_the_fixed_test():
    model = _cancelling(1e5)  # float32 is off by several percent of the scale here
    x, expected, truth = _outputs(model)
    assert float((expected.double() - truth).abs().max()) > 0.02 * float(expected.abs().max())
    accepted, _ = agrees(model, x, expected, truth.float(), TOLERANCE)
    assert not accepted  # even the exact result: the comparison cannot tell rounding from error here


def test_within_the_fixed_tolerance_needs_no_float64_run():
    model = _cancelling(1.0)
    x, expected, _ = _outputs(model)
    accepted, why = agrees(model, x, expected, expected + 1e-5, TOLERANCE)
    assert accepted and "within 0.001" in why
