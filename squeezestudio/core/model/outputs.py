"""What a classifier's output means: logits, probabilities or log-probabilities.

Models exported by other tools often end in Softmax. Treating those outputs
as logits applies a second softmax (confidences squashed towards uniform),
and cross-entropy, distillation and retraining then optimise the wrong
thing. The loader detects the kind once; graphs that end in Softmax lose that
last op (the handle remembers it and exports put it back), and a module that
cannot be edited is marked with its kind, which every consumer reads through
:func:`as_logits`. The mark lives on the module object so that it follows the
module through clones, compression and every function that only receives
the module.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from squeezestudio.core.errors import SqueezeStudioError

LOGITS = "logits"
PROBABILITIES = "probabilities"
LOG_PROBABILITIES = "log_probabilities"
OUTPUT_KINDS = (LOGITS, PROBABILITIES, LOG_PROBABILITIES)
FINAL_ACTIVATIONS = ("", "softmax", "log_softmax")

_ATTRIBUTE = "_squeezestudio_output_kind"
_SUM_TOLERANCE = 1e-3


def mark_output_kind(module: nn.Module, kind: str) -> None:
    """Record what ``module`` returns (read back by :func:`output_kind_of`)."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    if kind == LOGITS:
        module.__dict__.pop(_ATTRIBUTE, None)
    else:
        module.__dict__[_ATTRIBUTE] = kind


def output_kind_of(module: Any) -> str:
    """What ``module`` returns; unmarked modules return logits."""
    return getattr(module, "__dict__", {}).get(_ATTRIBUTE, LOGITS)


def class_scores(output: Any) -> torch.Tensor:
    """The ``(batch, classes)`` scores from whatever a model returns.

    A tensor, the first of a tuple, or a dict's ``logits``; ``[N, C, 1, 1]``
    (SqueezeNet as most tools export it) is flattened to ``[N, C]``.
    """
    if isinstance(output, dict):
        output = output.get("logits", next(iter(output.values()), None))
    elif isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise SqueezeStudioError(f"the model returned {type(output).__name__}, not a tensor of class scores")
    if output.dim() > 2 and all(s == 1 for s in output.shape[2:]):
        output = output.flatten(1)
    if output.dim() != 2:
        raise SqueezeStudioError(f"the model's output has shape {tuple(output.shape)}; "
                                 "expected (batch, classes)")
    return output


def as_logits(scores: torch.Tensor, kind: str) -> torch.Tensor:
    """Scores whose softmax is the model's class probabilities (log p for probability outputs).

    ``log p`` differs from the logits by a per-row constant, so softmax,
    cross-entropy, argmax and distillation give exactly the right values.
    """
    if kind == PROBABILITIES:
        return torch.log(scores.float().clamp_min(1e-30))
    return scores


def model_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` as ``(batch, classes)`` logits, whatever the model's output kind."""
    return as_logits(class_scores(model(x)), output_kind_of(model))


def detect_output_kind(scores: torch.Tensor) -> str:
    """Guess the kind from a few rows of outputs: rows of non-negative values summing to 1 are probabilities."""
    s = scores.detach().double()
    if s.numel() == 0 or s.shape[1] < 2:
        return LOGITS
    if bool((s >= 0).all()) and bool(((s.sum(dim=1) - 1).abs() < _SUM_TOLERANCE).all()):
        return PROBABILITIES
    if bool((s <= 0).all()) and bool(((s.exp().sum(dim=1) - 1).abs() < _SUM_TOLERANCE).all()):
        return LOG_PROBABILITIES
    return LOGITS


def probe_output_kind(module: nn.Module, example: torch.Tensor) -> str:
    """Run ``module`` on a random batch and :func:`detect_output_kind` its outputs."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return detect_output_kind(class_scores(module(example)))
    finally:
        module.train(was_training)


def describe_outputs(handle: Any) -> str:
    """One line for the user: what the model's outputs are and how they are used."""
    kind = output_kind_of(handle.module)
    if handle.final_activation:
        return (f"logits (the file's final {handle.final_activation} is left out while measuring and "
                "retraining, and put back on export)")
    if kind == PROBABILITIES:
        return "probabilities (rows sum to 1); used as such for confidences, their log for losses"
    if kind == LOG_PROBABILITIES:
        return "log-probabilities; used as logits"
    return "logits"


def restore_output_semantics(handle: Any, d: Mapping[str, Any]) -> None:
    """Apply a stored :func:`output_semantics` dict to a freshly built handle."""
    final = str(d.get("final_activation", ""))
    kind = str(d.get("kind", LOGITS))
    if final not in FINAL_ACTIVATIONS or kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output semantics {dict(d)!r}")
    handle.final_activation = final
    mark_output_kind(handle.module, kind)


def output_semantics(handle: Any) -> dict[str, str]:
    """The JSON-able output semantics of ``handle`` (stored in .sqz files and checkpoints)."""
    return {"kind": output_kind_of(handle.module), "final_activation": handle.final_activation}


class OriginalOutput(nn.Module):
    """Wraps a module to present the original file's interface (for export).

    NHWC input is transposed to the module's NCHW; the removed final
    activation is applied again.
    """

    def __init__(self, module: nn.Module, final_activation: str = "", nhwc: bool = False) -> None:
        super().__init__()
        if final_activation not in FINAL_ACTIVATIONS:
            raise ValueError(f"unknown final activation {final_activation!r}")
        self.module = module
        self.final_activation = final_activation
        self.nhwc = nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        out = self.module(x)
        if self.final_activation == "softmax":
            out = torch.softmax(out, dim=1)
        elif self.final_activation == "log_softmax":
            out = torch.log_softmax(out, dim=1)
        return out
