"""Checks and overrides applied to every loaded handle, whatever its format.

Done once, after the format-specific loader, so every format gets the same
treatment: the caller's class names and input spec win over what the file
says, and weights holding NaN or Inf are reported (the model still loads, so
the user can inspect it, but the warning names the broken tensors).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from squeezestudio.core.errors import ModelLoadError, PreprocessingError, SqueezeStudioError
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.model.input_checks import check_model_input
from squeezestudio.core.printable import printable
from squeezestudio.core.model.input_spec import (NORMALISATION_FLAGS, SIZE_FLAGS, apply_preprocess_options,
                                                  parse_preprocess_options)
from squeezestudio.core.model.outputs import LOGITS, class_scores, mark_output_kind, output_kind_of, probe_output_kind

_LISTED = 4


def count_outputs(module: nn.Module, spec: InputSpec) -> int:
    """Number of classes, from one forward pass of an example input (errors propagate)."""
    with torch.no_grad():
        out = module(spec.example(1))
    try:
        return int(class_scores(out).shape[1])
    except SqueezeStudioError as exc:
        raise ValueError(str(exc)) from None


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


def apply_preprocessing(handle: ModelHandle, options: Mapping[str, Any]) -> None:
    """Apply the user's preprocessing options to ``handle`` and check the model accepts the result.

    Warnings that asked for these options are dropped. Raises
    :class:`PreprocessingError` in one sentence when the options contradict
    the model (a channel count, or an input size its ONNX file does not declare).
    """
    old = handle.input_spec
    given = set(options)
    # Parsing is idempotent, so parsed CLI options and an API caller's plain values ({"resize": 256}) both work.
    options = parse_preprocess_options(options, "the preprocessing options")
    spec = apply_preprocess_options(old, {k: v for k, v in options.items()
                                          if not (k == "layout" and handle.source_format == "onnx")})
    if spec.layout == "nhwc" and handle.source_format != "onnx" and old.layout != "nhwc":
        raise PreprocessingError("--layout nhwc applies to ONNX files; a PyTorch model's layout is its own code")
    if (spec.height, spec.width) != (old.height, old.width) and handle.source_format == "onnx" \
            and not any(SIZE_FLAGS in w for w in handle.warnings):
        raise PreprocessingError(f"the ONNX file declares {old.height}x{old.width} inputs, so the input size "
                                 f"cannot be {spec.height}x{spec.width}")
    handle.input_spec = spec  # finish_handle then checks, within the budgets, that the model accepts it
    dropped = set()
    if "input_size" in given or "crop" in given:
        dropped.add(SIZE_FLAGS)
    if given & {"mean", "std", "pixel_scale", "resize", "channel_order"}:
        dropped.add(NORMALISATION_FLAGS)
    handle.warnings = [w for w in handle.warnings if not any(flag in w for flag in dropped)]


def finish_handle(handle: ModelHandle, class_names: Optional[Sequence[str]] = None,
                  input_spec: Optional[InputSpec] = None,
                  preprocess: Optional[Mapping[str, Any]] = None) -> ModelHandle:
    """Apply the caller's ``class_names``/``input_spec``/``preprocess`` and add the NaN/Inf warning.

    A module built by trusted code is probed once for its output kind (a
    model ending in Softmax returns probabilities). Raises
    :class:`ModelLoadError` if the number of class names differs from the
    model's number of outputs.
    """
    if input_spec is not None:
        handle.input_spec = input_spec
    if preprocess:
        apply_preprocessing(handle, preprocess)
    check_model_input(handle.module, handle.input_spec, printable(handle.name))
    if handle.trusted_code and output_kind_of(handle.module) == LOGITS:
        try:
            mark_output_kind(handle.module, probe_output_kind(handle.module, handle.input_spec.example(4)))
        except Exception:  # noqa: BLE001 - the loader already ran it once; a probe failure keeps logits
            pass
    outputs = len(handle.class_names)
    if class_names is not None:
        names = [str(c) for c in class_names]
        if outputs and len(names) != outputs:
            raise ModelLoadError(f"{len(names)} class names were given but the model has "
                                 f"{outputs} outputs")
        handle.class_names = names
    elif not outputs:
        raise ModelLoadError(f"cannot tell how many classes {handle.name} predicts; give its "
                             f"class names")
    broken = nonfinite_tensors(handle.module)
    if broken:
        handle.warnings.append(nonfinite_warning(broken))
    return handle
