"""Which device evaluation, sensitivity, sweeps and retraining run on.

``auto`` takes a CUDA GPU when torch sees one, else the CPU. The CLI's
``--device`` (and the GUI's setting) sets the process default once, so the
code between the command and the forward passes stays device-agnostic and
needs no extra argument.
"""

from __future__ import annotations

import threading
from typing import Optional

import torch

from squeezestudio.core.errors import SqueezeStudioError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
_default = "auto"
_lock = threading.Lock()


def resolve_device(name: Optional[str] = None) -> torch.device:
    """The torch device for ``auto``/``cpu``/``cuda``/``cuda:N`` (None: the process default)."""
    text = (name or default_device_name()).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SqueezeStudioError("--device cuda was asked for but torch sees no CUDA GPU here; "
                                     "use --device cpu or auto")
        return torch.device(text)
    raise SqueezeStudioError(f"unknown device {name!r}; use auto, cpu or cuda")


def set_default_device(name: str) -> torch.device:
    """Make ``name`` the process default (checked now, so a bad value fails before any work)."""
    global _default
    device = resolve_device(name)
    with _lock:
        _default = name.strip().lower()
    return device


def default_device_name() -> str:
    with _lock:
        return _default
