"""Which layers see a convolution's output channels, found by tracing the model with torch.fx.

Starting from a convolution's output, follow every use through operations
that keep channels in place (activations, pooling, dropout, BatchNorm) to the
layers that consume them: a convolution's input channels, a Linear's inputs
after a flatten (each channel is ``H*W`` consecutive features), and through
``torch.cat`` along channels (the channel moves by the offset of its part).
Anything else -- a residual add, a grouped convolution, the model's output, an
unknown operation -- makes the convolution unprunable; the reason is returned
so the method can log it. Positions are in the original model's indexing.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.Hardswish, nn.Hardtanh,
                 nn.Sigmoid, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
                 nn.Dropout, nn.Dropout2d, nn.Identity)
_PASS_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.leaky_relu, F.silu, F.gelu, F.elu, F.hardtanh, F.hardswish,
                   torch.sigmoid, torch.tanh, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                   F.adaptive_max_pool2d, F.dropout, torch.nn.functional.dropout2d}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone"}
_SHAPE_METHODS = {"size", "dim"}
_RESHAPES = {"flatten", "view", "reshape"}


class Unprunable(Exception):
    """The convolution's channels reach something this analysis cannot shrink."""


@dataclass
class ChannelUse:
    """A layer that sees the producer's channel ``c`` at positions ``(offset + c) * block + k``, k < block."""

    layer: str
    role: str  # "in" (input dim of a Conv2d/Linear) or "bn" (a BatchNorm's channels)
    offset: int
    block: int = 1

    def positions(self, channels: list[int]) -> list[int]:
        return [(self.offset + c) * self.block + k for c in channels for k in range(self.block)]


@dataclass
class ModelGraph:
    """A traced model with tensor shapes on its nodes."""

    graph_module: torch.fx.GraphModule
    nodes_of: dict[str, list[torch.fx.Node]] = field(default_factory=dict)


class _LeafTracer(torch.fx.Tracer):
    """Keeps every torch.nn layer a leaf (the default), traces through user containers."""


def trace(model: nn.Module, example: torch.Tensor) -> ModelGraph:
    """Trace ``model`` and record every node's output shape on ``example`` (eval mode, no grad)."""
    graph = _LeafTracer().trace(model)
    gm = torch.fx.GraphModule(model, graph)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was_training)
    result = ModelGraph(gm)
    for node in gm.graph.nodes:
        if node.op == "call_module":
            result.nodes_of.setdefault(str(node.target), []).append(node)
    return result


def _shape(node: Any) -> Optional[tuple[int, ...]]:
    meta = getattr(node, "meta", {}).get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def channel_uses(mg: ModelGraph, producer: str) -> list[ChannelUse]:
    """Every layer that must shrink with ``producer``'s output channels; raises :class:`Unprunable`."""
    nodes = mg.nodes_of.get(producer, [])
    if len(nodes) != 1:
        raise Unprunable("it is called more than once" if nodes else "it is not called in the traced graph")
    uses: list[ChannelUse] = []
    _follow(mg, nodes[0], 0, 1, uses, set())
    return uses


def _follow(mg: ModelGraph, value: torch.fx.Node, offset: int, block: int, uses: list[ChannelUse],
            seen: set[tuple[str, int, int]]) -> None:
    for user in list(value.users):
        key = (user.name, offset, block)
        if key in seen:
            continue
        seen.add(key)
        _visit(mg, value, user, offset, block, uses, seen)


def _visit(mg: ModelGraph, value: torch.fx.Node, user: torch.fx.Node, offset: int, block: int,
           uses: list[ChannelUse], seen: set[tuple[str, int, int]]) -> None:
    if user.op == "output":
        raise Unprunable("its channels are (part of) the model's output")
    if user.op == "call_module":
        _visit_module(mg, value, user, offset, block, uses, seen)
        return
    target = user.target
    if user.op == "call_method" and target in _SHAPE_METHODS:
        return
    if user.op == "call_function" and target is getattr:
        if user.args[1] == "shape":
            return
        raise Unprunable(f"its output's attribute {user.args[1]!r} is read")
    if user.args and user.args[0] is not value and target not in (torch.cat, torch.concat):
        raise Unprunable(f"{user.name} uses it in a position this analysis does not follow")
    if (user.op == "call_function" and target in _PASS_FUNCTIONS) or \
            (user.op == "call_method" and target in _PASS_METHODS):
        _follow(mg, user, offset, block, uses, seen)
    elif user.op == "call_function" and target in (torch.cat, torch.concat):
        _visit_cat(mg, value, user, offset, block, uses, seen)
    elif (user.op == "call_function" and target is torch.flatten) or \
            (user.op == "call_method" and target in _RESHAPES):
        _follow(mg, user, offset, _flattened_block(value, user, block), uses, seen)
    elif target in (operator.add, torch.add, operator.iadd) or target in ("add", "add_"):
        raise Unprunable("its channels are added to another tensor (a residual connection)")
    else:
        raise Unprunable(f"its channels reach {user.op} {getattr(target, '__name__', target)}, "
                         "which this analysis does not handle")


def _visit_module(mg: ModelGraph, value: torch.fx.Node, user: torch.fx.Node, offset: int, block: int,
                  uses: list[ChannelUse], seen: set[tuple[str, int, int]]) -> None:
    name = str(user.target)
    module = mg.graph_module.get_submodule(name)
    if len(mg.nodes_of.get(name, [])) != 1:
        raise Unprunable(f"{name} is called more than once")
    if isinstance(module, nn.Conv2d):
        if block != 1 or module.groups != 1:
            raise Unprunable(f"{name} is a grouped convolution" if module.groups != 1 else
                             f"{name} sees it reshaped")
        uses.append(ChannelUse(name, "in", offset))
    elif isinstance(module, nn.Linear):
        shape = _shape(value)
        if shape is None or len(shape) != 2:
            raise Unprunable(f"{name} is applied to a tensor that is not flattened to (N, features)")
        uses.append(ChannelUse(name, "in", offset, block))
    elif isinstance(module, nn.BatchNorm2d) and block == 1:
        uses.append(ChannelUse(name, "bn", offset))
        _follow(mg, user, offset, block, uses, seen)
    elif isinstance(module, _PASS_MODULES):
        _follow(mg, user, offset, block, uses, seen)
    elif isinstance(module, nn.Flatten):
        _follow(mg, user, offset, _flattened_block(value, user, block), uses, seen)
    else:
        raise Unprunable(f"its channels reach {name} ({type(module).__name__}), which this analysis "
                         "does not handle")


def _visit_cat(mg: ModelGraph, value: torch.fx.Node, user: torch.fx.Node, offset: int, block: int,
               uses: list[ChannelUse], seen: set[tuple[str, int, int]]) -> None:
    parts = _arg(user, 0, "tensors", ())
    dim = _arg(user, 1, "dim", 0)
    shape = _shape(value)
    if block != 1 or shape is None or len(shape) != 4 or dim not in (1, -3):
        raise Unprunable(f"{user.name} concatenates it along a dimension other than channels")
    if [p is value for p in parts].count(True) != 1:
        raise Unprunable(f"{user.name} concatenates it more than once")
    before = 0
    for part in parts:
        if part is value:
            break
        part_shape = _shape(part)
        if part_shape is None:
            raise Unprunable(f"{user.name} concatenates a tensor of unknown shape")
        before += part_shape[1]
    _follow(mg, user, offset + before, block, uses, seen)


def _flattened_block(value: torch.fx.Node, user: torch.fx.Node, block: int) -> int:
    """Features per channel after ``user`` flattens ``value`` from (N, C, H, W) to (N, C*H*W)."""
    before, after = _shape(value), _shape(user)
    if block != 1 or before is None or after is None or len(before) != 4 or len(after) != 2 \
            or after[1] != before[1] * before[2] * before[3]:
        raise Unprunable(f"{user.name} reshapes it other than by flattening (N, C, H, W) to (N, C*H*W)")
    return before[2] * before[3]
