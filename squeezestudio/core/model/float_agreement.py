"""Whether a second implementation of a module (an ONNX export in onnxruntime) computes the same function.

A fixed tolerance relative to the output scale is the first test. It is
not enough for every network: where the logits are small differences of
large terms (wide final layers fitted with little regularisation,
binarised or aggressively pruned layers whose activations grow), float32
rounding alone moves torch's own outputs by more than 1e-3 of their scale.
Measured on a MobileNetV2-shaped 1000-class model: torch float32 was 0.18
off its float64 result on logits of 50, onnxruntime 0.36, on the very same
file. A fixed tolerance then rejects a correct export, and evaluation falls
back to eager torch (2.5x slower there) or an export fails.

So when the fixed test fails, the module also runs in float64 on the same
batch. The second implementation is accepted when it is as close to that
result as a small multiple of torch's own float32 error, and that error is
itself small against the output scale: a wrong graph (a missing op, swapped
axes) is off by the whole scale, rounding is not.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
from torch import nn

ROUNDING_FACTOR = 4.0
"""How many times torch's own float32 error the other implementation may be off the float64 result."""

MAX_ROUNDING_SHARE = 0.02
"""The most of the output scale that float32 rounding may explain (larger: the test is not trusted)."""

MAX_FLOAT64_PARAMETERS = 50_000_000
"""Larger modules are not copied to float64 (the copy costs 8 bytes per parameter)."""


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference of two tensors of one shape (0 when empty)."""
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())


def output_scale(expected: torch.Tensor) -> float:
    """The output scale a relative tolerance applies to: the largest magnitude, at least 1."""
    return max(1.0, float(expected.abs().max())) if expected.numel() else 1.0


def float64_output(module: nn.Module, x: torch.Tensor,
                   scores: Callable[[object], torch.Tensor]) -> Optional[torch.Tensor]:
    """``scores(module(x))`` computed in float64 on a copy of ``module`` (None when that is not possible)."""
    if sum(p.numel() for p in module.parameters()) > MAX_FLOAT64_PARAMETERS:
        return None
    try:
        wide = copy.deepcopy(module).double().eval()
        with torch.inference_mode():
            return scores(wide(x.detach().double())).double().cpu()
    except Exception:  # noqa: BLE001 - a module that cannot run in float64 just keeps the fixed test
        return None


def agrees(module: nn.Module, x: torch.Tensor, expected: torch.Tensor, got: torch.Tensor, tolerance: float,
           scores: Callable[[object], torch.Tensor] = lambda out: out) -> tuple[bool, str]:
    """``(accepted, why)``: does ``got`` (another implementation's output on ``x``) match ``module``?

    ``expected`` is ``scores(module(x))`` in float32 and ``scores`` maps the
    module's raw output to the compared tensor. The reason says by how much
    they differ, for a log line or an error message.
    """
    if got.shape != expected.shape:
        return False, f"outputs shape {list(got.shape)} instead of {list(expected.shape)}"
    diff = max_abs_difference(got, expected)
    scale = output_scale(expected)
    if diff <= tolerance * scale:
        return True, f"differ by {diff:.2e} (within {tolerance:g} of the output scale {scale:.3g})"
    truth = float64_output(module, x, scores)
    if truth is None or truth.shape != expected.shape:
        return False, f"differ by {diff:.2e} (more than {tolerance:g} of the output scale {scale:.3g})"
    own = max_abs_difference(expected, truth)
    other = max_abs_difference(got, truth)
    allowed = max(tolerance * scale, ROUNDING_FACTOR * own)
    if own <= MAX_ROUNDING_SHARE * scale and other <= allowed:
        return True, (f"differ by {diff:.2e}, float32 rounding: torch is {own:.2e} off the float64 result "
                      f"and the other {other:.2e}")
    return False, (f"differ by {diff:.2e} (more than {tolerance:g} of the output scale {scale:.3g}; torch is "
                   f"{own:.2e} off its float64 result, the other {other:.2e})")
