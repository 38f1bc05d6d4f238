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

from squeezestudio.core.model.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec  # noqa: F401 - the handle's input type


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
    ``output_kind`` is what ``module`` returns: ``"logits"``, ``"probabilities"``
    or ``"log_probabilities"`` (see :mod:`squeezestudio.core.model.outputs`).
    ``final_activation`` (``"softmax"``/``"log_softmax"``) was the last op of the
    file's graph, removed at load so retraining and distillation see logits;
    exports put it back so the file keeps its original output.
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
    output_kind: str = "logits"
    final_activation: str = ""

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
