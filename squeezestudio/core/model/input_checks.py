"""Does a model accept its input spec, and what would one image cost? Found out at load time.

An input spec comes from a file or a flag; 29x29 for a 28x28 MLP ends in a
torch shape error deep in evaluation, and 20000x20000 makes the first
forward pass allocate gigabytes. Here the spec is checked for sense
(positive sizes, mean/std per channel), its one-image size is compared with
the ``input_elements`` limit before any tensor exists, and the model then
runs one image with a hook on every layer that stops the pass once its
activations pass the ``activation_elements`` limit, so a mismatch is one
sentence at load time and an oversized activation costs at most one layer.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.limits import check_elements, current_limits
from squeezestudio.core.model.handle import InputSpec


def check_input_spec_values(spec: InputSpec, source: str) -> None:
    """Positive sizes, finite mean/std with one value (or one per channel), within the input limit."""
    for key in ("channels", "height", "width"):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelLoadError(f"the input {key} of {source} must be a positive whole number, not {value!r}")
    for key in ("mean", "std"):
        values = getattr(spec, key)
        if len(values) not in (1, spec.channels):
            raise ModelLoadError(f"the input {key} of {source} has {len(values)} values but the input has "
                                 f"{spec.channels} channels")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ModelLoadError(f"the input {key} of {source} must hold finite numbers")
    if any(v == 0 for v in spec.std):
        raise ModelLoadError(f"the input std of {source} contains 0, which would divide by zero")
    elements = spec.channels * spec.height * spec.width
    check_elements(elements, current_limits().input_elements,
                   f"one {spec.channels}x{spec.height}x{spec.width} input image of {source}", "input_elements",
                   error=ModelLoadError)


class _OverBudget(Exception):
    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.total = total


def probe_forward(module: nn.Module, spec: InputSpec, source: str) -> int:
    """Run one image through the model; a sentence if it cannot take ``spec``.

    Returns the activation elements counted at the outputs of its leaf
    modules. A forward hook stops the pass as soon as the count passes the
    ``activation_elements`` limit, so an oversized activation costs at most
    one layer's output beyond the limit. (The meta device would allocate
    nothing, but its first use imports ~800 modules: 12 s on this machine.)
    """
    total = 0
    limit = current_limits().activation_elements

    def count(_m: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(int(o.numel()) for o in outputs if isinstance(o, torch.Tensor))
        if total > limit:
            raise _OverBudget(total)

    scripted = isinstance(module, torch.jit.ScriptModule)
    hooks = [] if scripted else [m.register_forward_hook(count) for m in module.modules()
                                 if not list(m.children())]
    modes = {m: m.training for m in module.modules()}
    module.eval()
    shape = f"{spec.channels}x{spec.height}x{spec.width}"
    try:
        with torch.no_grad():
            module(torch.zeros(1, spec.channels, spec.height, spec.width))
    except _OverBudget as over:
        check_elements(over.total, limit, f"one {shape} image through {source}", "activation_elements",
                       error=ModelLoadError)
    except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError, AttributeError, KeyError,
            AssertionError, NotImplementedError, OverflowError) as exc:  # a damaged graph fails in any of these
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{source} does not accept {shape} inputs ({detail}); give the input size the "
                             "model was trained on") from None
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
    return total


def check_model_input(module: nn.Module, spec: InputSpec, source: str) -> None:
    """All checks of this module, cheapest first."""
    check_input_spec_values(spec, source)
    probe_forward(module, spec, source)
