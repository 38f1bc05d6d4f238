"""Which channels must be removed together: a channel-level dependency graph built by tracing with torch.fx.

Every channel of every intermediate tensor is labelled with an *element*.
A convolution (or Linear) creates fresh elements for its outputs; operations
that keep channels in place (activations, pooling, BatchNorm, a depthwise
convolution) pass their input's labels on; a concatenation along channels
lists its parts' labels in order; a flatten repeats each label ``H*W`` times.
Operations that combine channels position by position -- a residual
addition, the gate of a squeeze-excitation block (a multiplication) -- make
the two labels at each position *the same* (union-find), and so do the
operations whose result depends on the channel count: ``chunk`` into equal
parts and ``ChannelShuffle`` keep working after pruning only if the same
positions are removed from every part, so position ``j`` of every part is
merged. This is the idea of Torch-Pruning's dependency graph (Fang et al.,
CVPR 2023), written here at the level of single channels so that shuffles
and concatenations need no special index arithmetic later.

Each layer dimension that sees a channel is recorded as a :class:`Member`
(a weight row, a weight column, a BatchNorm channel). Elements reaching the
model's output or input, a grouped (non-depthwise) convolution, a constant
tensor or any operation the graph does not know are *fixed*: they are never
removed, and the reason is kept for the log.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.Hardswish, nn.Hardsigmoid,
                 nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.PReLU)
_PASS_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.leaky_relu, F.silu, F.gelu, F.elu, F.hardtanh, F.hardswish,
                   F.hardsigmoid, torch.sigmoid, torch.tanh, F.sigmoid, F.max_pool2d, F.avg_pool2d,
                   F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout, F.dropout2d}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "hardswish", "float"}
_ELEMENTWISE = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv,
                torch.add, torch.sub, torch.mul}
_ELEMENTWISE_METHODS = {"add", "add_", "sub", "mul", "mul_"}
_NO_TENSOR_METHODS = {"size", "dim"}

Labels = list[int]
Value = Union[Labels, tuple]  # a tensor's channel labels, or a tuple of them (chunk's result)


@dataclass(frozen=True)
class Member:
    """One layer position that holds a channel: ``role`` is "out" (a weight row), "in" (a weight column),
    "dw" (a depthwise convolution's channel: row, input and group at once) or "bn" (a BatchNorm channel)."""

    layer: str
    role: str
    position: int


@dataclass
class ChannelGraph:
    """Union-find over channel elements, with the layer positions and fixing reasons of each."""

    parent: list[int] = field(default_factory=list)
    members: dict[int, list[Member]] = field(default_factory=dict)
    fixed: dict[int, str] = field(default_factory=dict)
    producers: dict[str, Labels] = field(default_factory=dict)  # a layer's output labels, in order

    def fresh(self, count: int, fixed: Optional[str] = None) -> Labels:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        labels = list(range(start, start + count))
        if fixed:
            for e in labels:
                self.fixed[e] = fixed
        return labels

    def find(self, e: int) -> int:
        root = e
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[e] != root:  # path compression
            self.parent[e], e = root, self.parent[e]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def fix(self, labels: Any, reason: str) -> None:
        for e in _flat(labels):
            self.fixed.setdefault(e, reason)

    def add(self, layer: str, role: str, labels: Labels) -> None:
        for position, e in enumerate(labels):
            self.members.setdefault(e, []).append(Member(layer, role, position))

    def classes(self) -> dict[int, list[int]]:
        """Root -> elements of every equivalence class."""
        out: dict[int, list[int]] = {}
        for e in range(len(self.parent)):
            out.setdefault(self.find(e), []).append(e)
        return out

    def fixed_reason(self, elements: list[int]) -> Optional[str]:
        for e in elements:
            if e in self.fixed:
                return self.fixed[e]
        return None


def _flat(value: Any) -> list[int]:
    """The element ids in labels, a tuple of labels or a list of those (None for no tensor)."""
    if isinstance(value, (list, tuple)):
        return [e for part in value for e in ([part] if isinstance(part, int) else _flat(part))]
    return []


def _shape(node: Any) -> Optional[tuple[int, ...]]:
    meta = getattr(node, "meta", {}).get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def trace_graph(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``model`` traced (torch.nn layers kept as leaves) in eval mode, with every node's output shape."""
    was_training = model.training
    model.eval()
    try:
        gm = torch.fx.GraphModule(model, torch.fx.Tracer().trace(model))
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    finally:
        model.train(was_training)
    return gm


def build_channel_graph(model: nn.Module, example: torch.Tensor) -> ChannelGraph:
    """Label every channel of ``model`` traced on ``example`` and merge the coupled ones."""
    gm = trace_graph(model, example)
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    builder = _Builder(gm, calls)
    for node in gm.graph.nodes:
        builder.visit(node)
    return builder.graph


class _Builder:
    """Walks the traced graph in order, computing each node's labels."""

    def __init__(self, gm: torch.fx.GraphModule, calls: dict[str, int]) -> None:
        self.gm, self.calls = gm, calls
        self.graph = ChannelGraph()
        self.values: dict[torch.fx.Node, Optional[Value]] = {}
        self.constants: set[torch.fx.Node] = set()

    # -- helpers ---------------------------------------------------------------------------------------
    def labels(self, arg: Any) -> Optional[Value]:
        return self.values.get(arg) if isinstance(arg, torch.fx.Node) else None

    def opaque(self, node: torch.fx.Node, reason: str) -> Optional[Labels]:
        """Fix every channel the node reads and give its output fixed labels."""
        for arg in node.all_input_nodes:
            self.graph.fix(self.values.get(arg), reason)
        shape = _shape(node)
        return self.graph.fresh(shape[1], reason) if shape is not None and len(shape) >= 2 else None

    # -- dispatch --------------------------------------------------------------------------------------
    def visit(self, node: torch.fx.Node) -> None:
        if node.op == "placeholder":
            shape = _shape(node)
            self.values[node] = self.graph.fresh(shape[1], "they are the model's input channels") \
                if shape is not None and len(shape) >= 2 else None
        elif node.op == "get_attr":
            self.values[node] = None
            self.constants.add(node)
        elif node.op == "output":
            self.graph.fix([self.values.get(a) for a in node.all_input_nodes], "its channels are (part of) "
                           "the model's output")
        elif node.op == "call_module":
            self.values[node] = self.module(node)
        else:
            self.values[node] = self.function(node)

    def module(self, node: torch.fx.Node) -> Optional[Value]:
        name = str(node.target)
        module = self.gm.get_submodule(name)
        x = self.labels(node.args[0]) if node.args else None
        owns_channels = any(True for _ in module.parameters(recurse=False)) or \
            isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        if owns_channels and self.calls.get(name, 0) != 1:  # a shared layer would shrink at every call
            return self.opaque(node, f"{name} is called more than once")
        if not isinstance(x, list):
            return self.opaque(node, f"{name} reads a tensor whose channels are not known")
        if isinstance(module, nn.Conv2d):
            if module.groups == 1:
                self.graph.add(name, "in", x)
                out = self.graph.fresh(module.out_channels)
                self.graph.add(name, "out", out)
                self.graph.producers[name] = out
                return out
            if module.groups == module.in_channels == module.out_channels:
                self.graph.add(name, "dw", x)
                return x
            return self.opaque(node, f"{name} is a grouped convolution")
        if isinstance(module, nn.Linear):
            shape = _shape(node.args[0])
            if shape is None or len(shape) != 2:
                return self.opaque(node, f"{name} is applied to a tensor that is not (N, features)")
            self.graph.add(name, "in", x)
            out = self.graph.fresh(module.out_features)
            self.graph.add(name, "out", out)
            self.graph.producers[name] = out
            return out
        if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)) and module.affine:
            self.graph.add(name, "bn", x)
            return x
        if isinstance(module, _PASS_MODULES) and not (isinstance(module, nn.PReLU) and module.num_parameters > 1):
            return x
        if isinstance(module, nn.Flatten):
            return self.flatten(node, x)
        if isinstance(module, nn.ChannelShuffle):
            return self.shuffle(x, module.groups, node)
        return self.opaque(node, f"its channels reach {name} ({type(module).__name__}), which this analysis "
                                 "does not handle")

    def function(self, node: torch.fx.Node) -> Optional[Value]:
        target = node.target
        method = node.op == "call_method"
        if method and target in _NO_TENSOR_METHODS:
            return None
        if target is getattr:
            return None
        first = self.labels(node.args[0]) if node.args else None
        if target is operator.getitem:
            index = node.args[1]
            if isinstance(first, tuple) and isinstance(index, int):
                return first[index]
            return self.opaque(node, f"{node.name} indexes into it")
        if (not method and target in _PASS_FUNCTIONS) or (method and target in _PASS_METHODS):
            return first if isinstance(first, list) else self.opaque(node, f"{node.name} reads unknown channels")
        if (not method and target in _ELEMENTWISE) or (method and target in _ELEMENTWISE_METHODS):
            return self.elementwise(node)
        if target in (torch.cat, torch.concat):
            return self.cat(node)
        if (not method and target is torch.flatten) or (method and target in ("flatten", "view", "reshape")):
            return self.flatten(node, first)
        if (method and target == "mean") or target is torch.mean:
            dims = _arg(node, 1, "dim", None)
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            rank = len(_shape(node.args[0]) or ())
            if isinstance(first, list) and dims and all((d % rank) >= 2 for d in dims):
                return first
            return self.opaque(node, f"{node.name} averages across channels")
        if (method and target == "chunk") or target is torch.chunk:
            return self.chunk(node, first, int(_arg(node, 1, "chunks", 1)), _arg(node, 2, "dim", 0))
        if (method and target == "split") or target is torch.split:
            size = _arg(node, 1, "split_size_or_sections", _arg(node, 1, "split_size", None))
            shape = _shape(node.args[0])
            if isinstance(size, int) and shape is not None and len(shape) >= 2 and shape[1] % size == 0:
                return self.chunk(node, first, shape[1] // size, _arg(node, 2, "dim", 0))
            return self.opaque(node, f"{node.name} splits it into unequal parts")
        name = getattr(target, "__name__", str(target))
        return self.opaque(node, f"its channels reach {node.op} {name}, which this analysis does not handle")

    # -- operations ------------------------------------------------------------------------------------
    def elementwise(self, node: torch.fx.Node) -> Optional[Value]:
        tensors = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        out_shape = _shape(node)
        if out_shape is None or len(out_shape) < 2 or \
                any(t in self.constants or not isinstance(self.values.get(t), list) for t in tensors):
            return self.opaque(node, f"{node.name} combines it with a constant or unknown tensor")
        wide = []
        for t in tensors:
            shape = _shape(t)
            if shape is None or len(shape) != len(out_shape) or shape[1] not in (out_shape[1], 1):
                return self.opaque(node, f"{node.name} broadcasts across channels")
            if shape[1] == out_shape[1]:
                wide.append(self.values[t])
        if not wide:
            return self.opaque(node, f"{node.name} broadcasts across channels")
        for other in wide[1:]:  # position j of every operand is one channel from now on
            for a, b in zip(wide[0], other):
                self.graph.union(a, b)
        return wide[0]

    def cat(self, node: torch.fx.Node) -> Optional[Value]:
        parts = list(_arg(node, 0, "tensors", ()))
        dim = _arg(node, 1, "dim", 0)
        rank = len(_shape(node) or ())
        labels = [self.labels(p) for p in parts]
        if rank < 2 or dim % rank != 1 or not all(isinstance(v, list) for v in labels):
            return self.opaque(node, f"{node.name} concatenates along a dimension other than channels")
        return [e for v in labels for e in v]  # type: ignore[union-attr]

    def flatten(self, node: torch.fx.Node, x: Optional[Value]) -> Optional[Value]:
        before, after = _shape(node.args[0]), _shape(node)
        if not isinstance(x, list) or before is None or after is None:
            return self.opaque(node, f"{node.name} reshapes channels it cannot follow")
        if before == after:
            return x
        if len(before) == 4 and len(after) == 2 and after[1] == before[1] * before[2] * before[3]:
            block = before[2] * before[3]
            return [e for e in x for _ in range(block)]
        return self.opaque(node, f"{node.name} reshapes it other than by flattening (N, C, H, W) to (N, C*H*W)")

    def chunk(self, node: torch.fx.Node, x: Optional[Value], parts: int, dim: Any) -> Optional[Value]:
        shape = _shape(node.args[0])
        if not isinstance(x, list) or shape is None or len(shape) < 2 or dim % len(shape) != 1 \
                or parts < 1 or len(x) % parts:
            return self.opaque(node, f"{node.name} splits it other than into equal channel parts")
        size = len(x) // parts
        for j in range(size):  # the parts keep equal sizes only if each loses the same positions
            for k in range(1, parts):
                self.graph.union(x[j], x[k * size + j])
        return tuple(x[k * size:(k + 1) * size] for k in range(parts))

    def shuffle(self, x: Labels, groups: int, node: torch.fx.Node) -> Optional[Value]:
        if len(x) % groups:
            return self.opaque(node, f"{node.name} shuffles a channel count its groups do not divide")
        size = len(x) // groups
        for j in range(size):  # the shuffle stays a shuffle only if every group loses the same positions
            for k in range(1, groups):
                self.graph.union(x[j], x[k * size + j])
        return [x[k * size + j] for j in range(size) for k in range(groups)]
