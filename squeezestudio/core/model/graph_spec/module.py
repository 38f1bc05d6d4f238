"""Rebuild and run a described graph: :class:`SpecGraphModule`.

A description (a JSON-able dict) has this layout::

    {"format": "squeezestudio.graph", "version": 1,
     "modules": [{"path": "features.0", "type": "Conv2d", "args": {...}}, ...],
     "tensors": [{"path": "scale", "shape": [4], "dtype": "float32",
                  "kind": "parameter" | "buffer", "persistent": true,
                  "value": optional nested list (small non-persistent constants)}],
     "nodes": [{"name": "x", "op": "placeholder"},
               {"name": "conv", "op": "call_module", "target": "features.0",
                "args": [{"ref": "x"}], "kwargs": {}},
               ..., {"name": "output", "op": "output", "args": [{"ref": ...}]}]}

Modules sit at their paths (so parameter names equal the original model's)
and are looked up at every call, which lets compression methods swap a
layer (e.g. for a Fire module) after the graph was built.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import torch
from torch import nn

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.graph_spec.allowed import FUNCTIONS, METHODS, MODULES
from squeezestudio.core.model.graph_spec.values import DTYPES, ValueEncodingError, decode_value, refs_in, resolve

GRAPH_FORMAT = "squeezestudio.graph"
GRAPH_VERSION = 1
MAX_INLINE_ELEMENTS = 65536
MAX_TOTAL_ELEMENTS = 2**32  # a description declaring more weights than this is refused before allocating
_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")
_NODE_OPS = {"placeholder", "get_attr", "call_module", "call_function", "call_method", "output"}


class GraphSpecError(ModelLoadError):
    """A graph description is malformed, or a module cannot be described as one."""


def is_valid_path(path: str) -> bool:
    """True if ``path`` is a dotted name we may create attributes for."""
    segments = path.split(".")
    if not path or not all(_SEGMENT.match(s) for s in segments):
        return False
    return not any(s in _RESERVED or s.startswith("__") for s in segments)


_RESERVED = frozenset(dir(nn.Module())) | {"graph_spec", "_nodes"}


class SpecGraphModule(nn.Module):
    """A trainable module that runs a described graph, node by node.

    ``graph_spec`` keeps the (weight-free) description it was built from, so
    the module can be described again without tracing.
    """

    def __init__(self, graph: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT:
            raise GraphSpecError("the architecture description is not a SqueezeStudio graph")
        if graph.get("version") != GRAPH_VERSION:
            raise GraphSpecError(f"graph description version {graph.get('version')!r} is not supported; "
                                 "update SqueezeStudio")
        self.graph_spec = copy.deepcopy(graph)
        self._declared_elements = 0
        try:
            for entry in graph.get("modules", []):
                self._add_module(entry)
            for entry in graph.get("tensors", []):
                self._add_tensor(entry)
            self._nodes = self._decode_nodes(graph.get("nodes", []))
        except GraphSpecError:
            raise
        except (KeyError, TypeError, ValueError, ValueEncodingError) as exc:
            raise GraphSpecError(f"the graph description is malformed: {exc}") from exc

    # -- construction -------------------------------------------------
    def _owner(self, path: str) -> tuple[nn.Module, str]:
        """The module that holds ``path``'s last segment, creating plain containers on the way."""
        if not is_valid_path(path):
            raise GraphSpecError(f"invalid name {path!r} in the graph description")
        *parents, leaf = path.split(".")
        owner: nn.Module = self
        for seg in parents:
            child = owner._modules.get(seg)
            if child is None:
                if hasattr(owner, seg):
                    raise GraphSpecError(f"name {path!r} clashes with an existing attribute")
                child = nn.Module()
                owner.add_module(seg, child)
            owner = child
        if hasattr(owner, leaf) and leaf not in owner._modules:
            raise GraphSpecError(f"name {path!r} clashes with an existing attribute")
        return owner, leaf

    def _add_module(self, entry: dict[str, Any]) -> None:
        type_name = entry["type"]
        if type_name not in MODULES:
            raise GraphSpecError(f"module type {type_name!r} is not allowed in a graph description")
        cls = MODULES[type_name][0]
        kwargs = {str(k): decode_value(v) for k, v in dict(entry.get("args", {})).items()}
        if any(refs_in(v) for v in kwargs.values()):
            raise GraphSpecError(f"module {entry['path']!r} has a reference among its arguments")
        owner, leaf = self._owner(str(entry["path"]))
        if leaf in owner._modules:
            raise GraphSpecError(f"module path {entry['path']!r} appears twice")
        try:
            with torch.device("meta"):  # measure first: a tiny file must not make us allocate terabytes
                probe = cls(**kwargs)
        except (RuntimeError, ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise GraphSpecError(f"module {str(entry['path'])[:80]!r} ({type_name}) cannot be built from its "
                                 f"arguments ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
        self._count(sum(t.numel() for t in list(probe.parameters()) + list(probe.buffers())), entry["path"])
        module = cls(**kwargs)
        with torch.no_grad():
            for p in module.parameters(recurse=True):
                p.zero_()
        owner.add_module(leaf, module)

    def _add_tensor(self, entry: dict[str, Any]) -> None:
        dtype = DTYPES[entry["dtype"]]
        shape = [int(s) for s in entry["shape"]]
        if any(s < 0 for s in shape):
            raise GraphSpecError(f"tensor {entry['path']!r} has a negative dimension")
        self._count(math.prod(shape), entry["path"])
        if "value" in entry:
            value = torch.tensor(entry["value"], dtype=dtype).reshape(shape)
            if value.numel() > MAX_INLINE_ELEMENTS:
                raise GraphSpecError(f"inline constant {entry['path']!r} is too large")
        else:
            value = torch.zeros(shape, dtype=dtype)
        owner, leaf = self._owner(str(entry["path"]))
        if leaf in owner._modules:
            raise GraphSpecError(f"tensor path {entry['path']!r} clashes with a module")
        if entry["kind"] == "parameter":
            owner.register_parameter(leaf, nn.Parameter(value, requires_grad=value.is_floating_point()))
        elif entry["kind"] == "buffer":
            owner.register_buffer(leaf, value, persistent=bool(entry.get("persistent", True)))
        else:
            raise GraphSpecError(f"unknown tensor kind {entry['kind']!r}")

    def _count(self, elements: int, path: str) -> None:
        self._declared_elements += int(elements)
        if self._declared_elements > MAX_TOTAL_ELEMENTS:
            raise GraphSpecError(f"the graph description declares too many weights (at {path!r}); "
                                 "the file is corrupt or not meant for SqueezeStudio")

    def _decode_nodes(self, nodes: list[dict[str, Any]]) -> list[tuple[str, str, Any, Any, Any]]:
        decoded: list[tuple[str, str, Any, Any, Any]] = []
        seen: set[str] = set()
        for node in nodes:
            name, op = str(node["name"]), str(node["op"])
            if op not in _NODE_OPS or name in seen:
                raise GraphSpecError(f"node {name!r} is invalid or repeated")
            target = node.get("target")
            args = tuple(decode_value(a) for a in node.get("args", []))
            kwargs = {str(k): decode_value(v) for k, v in dict(node.get("kwargs", {})).items()}
            missing = [r for r in refs_in(list(args) + list(kwargs.values())) if r not in seen]
            if missing:
                raise GraphSpecError(f"node {name!r} uses {missing[0]!r} before it is computed")
            self._check_target(op, target)
            decoded.append((name, op, target, args, kwargs))
            seen.add(name)
        if not decoded or decoded[-1][1] != "output" or sum(d[1] == "output" for d in decoded) != 1:
            raise GraphSpecError("the graph description must end with exactly one output node")
        return decoded

    def _check_target(self, op: str, target: Any) -> None:
        if op == "call_module":
            try:
                self.get_submodule(str(target))
            except AttributeError as exc:
                raise GraphSpecError(f"the graph calls an undeclared module {target!r}") from exc
        elif op == "call_function" and target not in FUNCTIONS:
            raise GraphSpecError(f"function {target!r} is not allowed in a graph description")
        elif op == "call_method" and target not in METHODS:
            raise GraphSpecError(f"tensor method {target!r} is not allowed in a graph description")
        elif op == "get_attr":
            self._fetch(str(target))

    def _fetch(self, path: str) -> Any:
        prefix, _, leaf = path.rpartition(".")
        try:
            owner = self.get_submodule(prefix) if prefix else self
        except AttributeError as exc:
            raise GraphSpecError(f"the graph reads an undeclared tensor {path!r}") from exc
        if leaf in owner._parameters or leaf in owner._buffers:
            return getattr(owner, leaf)
        raise GraphSpecError(f"the graph reads an undeclared tensor {path!r}")

    # -- execution ----------------------------------------------------
    def forward(self, *inputs: Any) -> Any:
        env: dict[str, Any] = {}
        remaining = list(inputs)
        for name, op, target, args, kwargs in self._nodes:
            if op == "placeholder":
                if remaining:
                    env[name] = remaining.pop(0)
                elif args:  # a forward() argument with a default value
                    env[name] = resolve(args[0], env)
                else:
                    raise TypeError(f"missing input {name!r}")
                continue
            a = resolve(args, env)
            kw = {k: resolve(v, env) for k, v in kwargs.items()}
            if op == "call_module":
                env[name] = self.get_submodule(target)(*a, **kw)
            elif op == "call_function":
                env[name] = FUNCTIONS[target](*a, **kw)
            elif op == "call_method":
                env[name] = getattr(a[0], target)(*a[1:], **kw)
            elif op == "get_attr":
                env[name] = self._fetch(target)
            else:
                return a[0]
        raise RuntimeError("graph has no output")  # unreachable: checked at construction


def build_graph_module(graph: dict[str, Any]) -> SpecGraphModule:
    """Instantiate a described graph with zero weights (load a state dict next)."""
    return SpecGraphModule(graph)


__all__ = ["GraphSpecError", "SpecGraphModule", "build_graph_module", "is_valid_path",
           "GRAPH_FORMAT", "GRAPH_VERSION", "MAX_INLINE_ELEMENTS", "MAX_TOTAL_ELEMENTS"]
