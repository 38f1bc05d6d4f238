"""What a checkpoint's tensors would cost and whether they can be weights, checked before use.

A torch file stores a tensor as a storage plus a view (size, stride, offset).
A stride-0 view of one element is a few bytes on disk and 10^10 elements
once anything touches it (``float()``, ``clone()``, ``load_state_dict``), so
the element count of every view is summed and compared with a budget that
grows with the file's size, before any tensor is materialised. Overlapping
and stride-0 views within the budget are made contiguous copies, so later
in-place edits of one weight cannot change another.

Only floating-point tensors can be weights: integer, boolean and complex
ones are refused with a sentence where the model needs a float (a quantized
or corrupted checkpoint), instead of torch's "Only Tensors of floating point
... can require gradients".
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.limits import check_count, check_elements, current_limits, element_budget, human_bytes
from squeezestudio.core.printable import printable


def _storage_elements(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().nbytes()) // max(t.element_size(), 1)
    except (RuntimeError, NotImplementedError):
        return int(t.numel())


def is_expanded_view(t: torch.Tensor) -> bool:
    """True for a view that shows more elements than its storage holds (stride 0, overlaps)."""
    if t.numel() <= 1:
        return False
    if any(s == 0 for s, n in zip(t.stride(), t.shape) if n > 1):
        return True
    return t.numel() > _storage_elements(t) or not _non_overlapping(t)


def _non_overlapping(t: torch.Tensor) -> bool:
    dims = sorted((abs(st), n) for st, n in zip(t.stride(), t.shape) if n > 1)
    span = 1
    for stride, size in dims:
        if stride < span:
            return False
        span = stride * size
    return True


def check_tensor_budget(tensors: Mapping[str, torch.Tensor], file_bytes: int, source: str) -> dict[str, torch.Tensor]:
    """Refuse tensors expanding past the file's budget; return them with expanded views materialised."""
    limits = current_limits()
    check_count(len(tensors), limits.elements_floor, f"the number of tensors in {source}", "elements_floor",
                ModelLoadError)
    for name in tensors:
        if len(name) > limits.key_length:
            check_count(len(name), limits.key_length, f"the length of a tensor name in {source}", "key_length",
                        ModelLoadError)
    total = sum(int(t.numel()) for t in tensors.values())
    check_elements(total, element_budget(file_bytes, limits.elements_per_byte, limits),
                   f"the tensors of {source} ({human_bytes(file_bytes)} on disk)", "elements_per_byte",
                   error=ModelLoadError)
    return {k: (v.contiguous().clone() if is_expanded_view(v) else v) for k, v in tensors.items()}


def refuse_unusable_dtypes(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Complex tensors are never weights here: refuse them by name."""
    bad = [(k, v.dtype) for k, v in tensors.items() if v.is_complex()]
    if bad:
        name, dtype = bad[0]
        raise ModelLoadError(f"{source} stores {printable(name)} as {str(dtype).replace('torch.', '')}; "
                             f"SqueezeStudio works on real floating-point weights only")


def check_weight_dtypes(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                        source: str) -> None:
    """Where the model has a floating-point tensor the checkpoint must give a floating-point one."""
    for key, want in expected.items():
        got = given.get(key)
        if got is None or not want.is_floating_point() or got.is_floating_point():
            continue
        kind = str(got.dtype).replace("torch.", "")
        raise ModelLoadError(f"{source} stores {printable(key)} as {kind}, but it is a floating-point weight "
                             f"of the model; integer, boolean and complex weights (e.g. a quantized "
                             f"checkpoint) must be converted to float before SqueezeStudio can use them")
