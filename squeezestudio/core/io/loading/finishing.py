"""Checks and overrides applied to every loaded handle, whatever its format.

Done once, after the format-specific loader, so every format gets the same
treatment: the caller's class names and input spec win over what the file
says, and weights holding NaN or Inf are reported (the model still loads, so
the user can inspect it, but the warning names the broken tensors).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.model.input_checks import check_model_input
from squeezestudio.core.printable import printable

_LISTED = 4


def count_outputs(module: nn.Module, spec: InputSpec) -> int:
    """Number of classes, from one forward pass of an example input (errors propagate)."""
    with torch.no_grad():
        out = module(spec.example(1))
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    elif isinstance(out, dict) and out:
        out = out.get("logits", next(iter(out.values())))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"expected (batch, classes) logits, got {shape}")
    return int(out.shape[1])


def nonfinite_tensors(module: nn.Module) -> list[str]:
    """Names of floating-point parameters and buffers holding any NaN or Inf."""
    with torch.no_grad():
        return [name for name, value in module.state_dict().items()
                if value.is_floating_point() and _has_nonfinite(value)]


def _has_nonfinite(value: torch.Tensor) -> bool:
    # A sum is NaN/Inf whenever an element is, and is ~10x faster than isfinite on
    # this CPU build; only a suspicious sum (possibly a mere overflow) gets the exact test.
    if value.numel() == 0 or bool(torch.isfinite(value.sum())):
        return False
    return not bool(torch.isfinite(value).all())


def nonfinite_warning(names: list[str]) -> str:
    more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return (f"{len(names)} weight tensor(s) contain NaN or Inf values "
            f"({', '.join(names[:_LISTED])}{more}); the model's predictions may be meaningless")


def finish_handle(handle: ModelHandle, class_names: Optional[Sequence[str]] = None,
                  input_spec: Optional[InputSpec] = None) -> ModelHandle:
    """Apply the caller's ``class_names``/``input_spec`` and add the NaN/Inf warning.

    Raises :class:`ModelLoadError` if the number of class names differs from
    the model's number of outputs.
    """
    if input_spec is not None:
        handle.input_spec = input_spec
    check_model_input(handle.module, handle.input_spec, printable(handle.name))
    outputs = len(handle.class_names)
    if class_names is not None:
        names = [str(c) for c in class_names]
        if outputs and len(names) != outputs:
            raise ModelLoadError(f"{len(names)} class names were given but the model has "
                                 f"{outputs} outputs")
        if len(set(names)) != len(names):
            raise ModelLoadError("the class names contain duplicates; each class needs its own name")
        handle.class_names = names
    elif not outputs:
        raise ModelLoadError(f"cannot tell how many classes {handle.name} predicts; give its "
                             f"class names")
    broken = nonfinite_tensors(handle.module)
    if broken:
        handle.warnings.append(nonfinite_warning(broken))
    return handle
