"""Describe an arbitrary (trusted) torch module as a graph, via torch.fx.

Used for models loaded from pickles or Python files: once described, a model
can be rebuilt from a .sqz file without the user's code. Tracing runs the
module's Python code, so this is only called on modules already loaded under
the user's trust; the description itself holds only allow-listed items.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx
from torch import nn

from squeezestudio.core.model.graph_spec.allowed import FUNCTION_NAMES, METHODS, MODULE_TYPE_NAMES, module_constructor_args
from squeezestudio.core.model.graph_spec.builder import GraphBuilder
from squeezestudio.core.model.graph_spec.module import MAX_INLINE_ELEMENTS, GraphSpecError, is_valid_path
from squeezestudio.core.model.graph_spec.values import Ref, ValueEncodingError


class _AllowListTracer(torch.fx.Tracer):
    """Keeps allow-listed torch.nn modules as leaves and traces through everything else."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in MODULE_TYPE_NAMES or super().is_leaf_module(m, module_qualified_name)


def describe_with_fx(module: nn.Module) -> dict[str, Any]:
    """The graph description of ``module``; raises :class:`GraphSpecError` when it cannot be made."""
    tracer = _AllowListTracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # tracing runs user code: any failure means "cannot describe"
        raise GraphSpecError(f"cannot trace {type(module).__name__} with torch.fx ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    builder = GraphBuilder()
    leaf_paths = _declare_leaf_modules(module, graph, builder)
    _declare_other_tensors(module, leaf_paths, builder, graph)
    try:
        for node in graph.nodes:
            builder.add_node(node.op, _target(node), [_encode(a) for a in node.args],
                             {k: _encode(v) for k, v in node.kwargs.items()}, name=node.name)
    except ValueEncodingError as exc:
        raise GraphSpecError(f"cannot describe {type(module).__name__}: {exc}") from exc
    return builder.to_dict()


def _encode(value: Any) -> Any:
    # Arguments are re-encoded by the builder; here we only turn fx nodes into refs.
    if isinstance(value, torch.fx.Node):
        return Ref(value.name)
    if isinstance(value, (list, tuple)):
        items = [_encode(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, slice):
        return slice(_encode(value.start), _encode(value.stop), _encode(value.step))
    if isinstance(value, torch.Tensor):
        raise ValueEncodingError("a tensor is passed as a literal argument")
    return value


def _target(node: torch.fx.Node) -> str | None:
    if node.op in ("placeholder", "output"):
        return None
    if node.op == "call_function":
        name = FUNCTION_NAMES.get(id(node.target))
        if name is None:
            fn = getattr(node.target, "__qualname__", repr(node.target))
            raise GraphSpecError(f"the function {fn} is not on the allow-list of describable operations")
        return name
    if node.op == "call_method" and node.target not in METHODS:
        raise GraphSpecError(f"the tensor method {node.target!r} is not on the allow-list")
    return str(node.target)


def _declare_leaf_modules(module: nn.Module, graph: torch.fx.Graph, builder: GraphBuilder) -> set[str]:
    called = [str(n.target) for n in graph.nodes if n.op == "call_module"]
    declared: set[str] = set()
    for path in called:
        if path in declared:
            continue
        sub = module.get_submodule(path)
        if type(sub) not in MODULE_TYPE_NAMES:
            raise GraphSpecError(f"layer {path!r} is a {type(sub).__name__}, which is not on the allow-list")
        if not is_valid_path(path):
            raise GraphSpecError(f"layer name {path!r} cannot be used in a description")
        builder.claim_path(path)
        builder.add_module(path, MODULE_TYPE_NAMES[type(sub)], module_constructor_args(sub))
        declared.add(path)
    return declared


def _declare_other_tensors(module: nn.Module, leaf_paths: set[str], builder: GraphBuilder,
                           graph: torch.fx.Graph) -> None:
    """Parameters and buffers outside the called leaf modules (custom parameters, unused layers, fx constants)."""
    def inside_leaf(name: str) -> bool:
        return any(name.startswith(p + ".") for p in leaf_paths)

    persistent = set(module.state_dict(keep_vars=True).keys())
    for name, param in module.named_parameters(remove_duplicate=False):
        if not inside_leaf(name):
            _claim(builder, name)
            builder.add_tensor(name, tuple(param.shape), param.dtype, "parameter")
    for name, buf in module.named_buffers(remove_duplicate=False):
        if inside_leaf(name):
            continue
        _claim(builder, name)
        if name in persistent:
            builder.add_tensor(name, tuple(buf.shape), buf.dtype, "buffer")
        else:
            builder.add_tensor(name, tuple(buf.shape), buf.dtype, "buffer", persistent=False,
                               value=_small(name, buf))
    # Tensors created inside forward() (torch.tensor(...) literals) become fx constants.
    for node in graph.nodes:
        if node.op == "get_attr" and str(node.target).startswith("_tensor_constant"):
            const = getattr(module, node.target)
            _claim(builder, node.target)
            builder.add_tensor(node.target, tuple(const.shape), const.dtype, "buffer", persistent=False,
                               value=_small(node.target, const))


def _claim(builder: GraphBuilder, path: str) -> None:
    if not is_valid_path(path) or builder.claim_path(path) != path:
        raise GraphSpecError(f"tensor name {path!r} cannot be used in a description")


def _small(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if tensor.numel() > MAX_INLINE_ELEMENTS or tensor.dtype.is_complex:
        raise GraphSpecError(f"the constant {name!r} is too large to store in a description")
    return tensor
