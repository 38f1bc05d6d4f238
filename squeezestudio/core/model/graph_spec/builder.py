"""Write a graph description step by step (used by the ONNX converter and the fx describer)."""

from __future__ import annotations

import re
from typing import Any, Optional

import torch

from squeezestudio.core.model.graph_spec.module import GRAPH_FORMAT, GRAPH_VERSION, is_valid_path
from squeezestudio.core.model.graph_spec.values import DTYPE_NAMES, Ref, encode_value

_NON_WORD = re.compile(r"[^A-Za-z0-9_]+")


def sanitize(name: str, fallback: str = "layer") -> str:
    """A readable Python identifier from an arbitrary (ONNX) name: ``/features/0/Conv`` -> ``features_0_Conv``."""
    cleaned = _NON_WORD.sub("_", name).strip("_")
    cleaned = re.sub(r"_+", "_", cleaned) or fallback
    if cleaned[0].isdigit():
        cleaned = f"{fallback}_{cleaned}"
    return cleaned


class GraphBuilder:
    """Collects modules, tensors and nodes, keeping every name unique and valid."""

    def __init__(self) -> None:
        self.modules: list[dict[str, Any]] = []
        self.tensors: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []
        self._leaf_paths: set[str] = set()
        self._container_paths: set[str] = set()
        self._node_names: set[str] = set()
        self._next_suffix: dict[str, int] = {}  # base name -> next number to try (keeps naming linear)

    # -- names ---------------------------------------------------------
    def _path_free(self, path: str) -> bool:
        if not is_valid_path(path) or path in self._leaf_paths or path in self._container_paths:
            return False
        parts = path.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
        return not any(p in self._leaf_paths for p in prefixes)

    def claim_path(self, preferred: str, fallback: str = "layer") -> str:
        """A free attribute path: ``preferred`` if possible, else a sanitized flat variant."""
        base = sanitize(preferred, fallback)
        for path in ([preferred] if preferred else []) + [base]:
            if self._path_free(path):
                return self._take_path(path)
        i = self._next_suffix.get(base, 2)
        while not self._path_free(f"{base}_{i}"):
            i += 1
        self._next_suffix[base] = i + 1
        return self._take_path(f"{base}_{i}")

    def _take_path(self, path: str) -> str:
        parts = path.split(".")
        self._container_paths.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self._leaf_paths.add(path)
        return path

    def node_name(self, hint: str) -> str:
        base = sanitize(hint, "v")
        name, i = base, self._next_suffix.get("node:" + base, 2)
        while name in self._node_names:
            name = f"{base}_{i}"
            i += 1
        self._next_suffix["node:" + base] = i
        self._node_names.add(name)
        return name

    # -- content -------------------------------------------------------
    def add_module(self, path: str, type_name: str, args: dict[str, Any]) -> None:
        """Declare a module at an already claimed ``path`` with constructor ``args``."""
        self.modules.append({"path": path, "type": type_name,
                             "args": {k: encode_value(v) for k, v in args.items()}})

    def add_tensor(self, path: str, shape: tuple[int, ...], dtype: torch.dtype, kind: str,
                   persistent: bool = True, value: Optional[torch.Tensor] = None) -> None:
        """Declare a parameter or buffer; ``value`` inlines a small constant in the description."""
        entry: dict[str, Any] = {"path": path, "shape": [int(s) for s in shape],
                                 "dtype": DTYPE_NAMES[dtype], "kind": kind, "persistent": persistent}
        if value is not None:
            entry["value"] = value.detach().cpu().reshape(-1).tolist()
        self.tensors.append(entry)

    def add_node(self, op: str, target: Optional[str], args: tuple | list = (),
                 kwargs: Optional[dict[str, Any]] = None, hint: str = "v",
                 name: Optional[str] = None) -> Ref:
        """Append a node; returns a reference to its output."""
        node_name = name if name is not None else self.node_name(hint)
        if name is not None:
            self._node_names.add(name)
        node: dict[str, Any] = {"name": node_name, "op": op}
        if target is not None:
            node["target"] = target
        if args:
            node["args"] = [encode_value(a) for a in args]
        if kwargs:
            node["kwargs"] = {k: encode_value(v) for k, v in kwargs.items()}
        self.nodes.append(node)
        return Ref(node_name)

    def to_dict(self) -> dict[str, Any]:
        return {"format": GRAPH_FORMAT, "version": GRAPH_VERSION, "modules": list(self.modules),
                "tensors": list(self.tensors), "nodes": list(self.nodes)}
