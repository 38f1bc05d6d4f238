"""One handle for a loaded model, whatever file it came from.

Loaders (zoo checkpoint, safetensors, ONNX, trusted pickle/TorchScript/Python)
all return a :class:`ModelHandle`, so inspection, evaluation, compression and
export never need to know the source format.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What the model expects as input: an NCHW float tensor normalised per channel."""

    channels: int = 3
    height: int = 224
    width: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def example(self, batch: int = 1) -> torch.Tensor:
        """A random input of the right shape (for tracing, MAC counting, export)."""
        return torch.randn(batch, self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        """Read a spec recorded in a file; ``ValueError`` names the first impossible value."""
        sizes = {}
        for key in ("channels", "height", "width"):
            value = d[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"the input {key} must be a positive whole number, not {str(value)[:40]}")
            sizes[key] = value
        mean, std = d["mean"], d["std"]
        if not isinstance(mean, (list, tuple)) or not isinstance(std, (list, tuple)) \
                or len(mean) > 4096 or len(std) > 4096:
            raise ValueError("the input mean and std must be short lists of numbers")
        spec = cls(mean=tuple(float(x) for x in mean), std=tuple(float(x) for x in std), **sizes)
        if not all(math.isfinite(x) for x in spec.mean + spec.std) or any(x == 0 for x in spec.std):
            raise ValueError("the input mean and std must be finite numbers and the std never 0")
        return spec


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to rebuild the module without the original file.

    ``kind == "zoo"``: ``name`` is a zoo architecture and ``kwargs`` its
    constructor arguments. ``kind == "graph"``: ``graph`` is a JSON-able
    description produced by :mod:`squeezestudio.core.model.architecture_spec`
    (allow-listed module types and functions only, so rebuilding runs no
    user code). ``modifications`` are architecture changes made afterwards
    (Fire substitution, low-rank factorisation...), each a JSON dict with a
    ``"method"`` key naming the compression method that knows how to replay it.
    """

    kind: str
    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    graph: Optional[dict[str, Any]] = None
    modifications: tuple[dict[str, Any], ...] = ()

    def with_modification(self, modification: dict[str, Any]) -> "ArchitectureSpec":
        """A copy that also replays ``modification`` (e.g. a Fire substitution) on rebuild."""
        return replace(self, modifications=self.modifications + (dict(modification),))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "kwargs": dict(self.kwargs)}
        if self.graph is not None:
            d["graph"] = self.graph
        if self.modifications:
            d["modifications"] = [dict(m) for m in self.modifications]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchitectureSpec":
        return cls(kind=str(d["kind"]), name=str(d.get("name", "")),
                   kwargs=dict(d.get("kwargs", {})), graph=d.get("graph"),
                   modifications=tuple(dict(m) for m in d.get("modifications", ())))


@dataclass
class ModelHandle:
    """A loaded classifier and everything known about it.

    ``source_format`` is one of ``"zoo"``, ``"state_dict"``, ``"safetensors"``,
    ``"onnx"``, ``"pickle"``, ``"torchscript"``, ``"python"``, ``"sqz"``.
    ``trusted_code`` is True when loading it executed code the user vouched for.
    ``architecture`` is how to rebuild the module without the original file
    (None for TorchScript, which cannot be described without its code).
    """

    module: nn.Module
    name: str
    input_spec: InputSpec
    class_names: list[str]
    source_format: str
    source_path: Optional[Path] = None
    trusted_code: bool = False
    architecture: Optional[ArchitectureSpec] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def clone(self) -> "ModelHandle":
        """A deep copy of the module with the same metadata (compression works on clones)."""
        return replace(self, module=copy.deepcopy(self.module), warnings=list(self.warnings))


def default_class_names(n: int) -> list[str]:
    """Names used when a model does not carry any: ``class 0`` .. ``class n-1``."""
    return [f"class {i}" for i in range(n)]


DIGIT_CLASS_NAMES = [str(i) for i in range(10)]
