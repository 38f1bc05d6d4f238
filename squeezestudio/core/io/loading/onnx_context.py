"""State shared by the ONNX op converters while one graph is being translated.

The converter walks the ONNX nodes in order. Every ONNX value is either a
*constant* (initializer, Constant node, or folded from constants; kept as a
numpy array so converters can read weights, shapes and axes) or a *graph
value* (a :class:`Ref` to a node of the description being written). Weights
of real layers go to ``state`` under their parameter names; constant
tensors used as graph values become buffers of the rebuilt module.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.model.graph_spec.builder import GraphBuilder, sanitize
from squeezestudio.core.model.graph_spec.module import MAX_INLINE_ELEMENTS
from squeezestudio.core.model.graph_spec.values import Ref


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (bytes decoded to str)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        out[attr.name] = value
    return out


def int_list(values: np.ndarray | list) -> list[int]:
    """Any ONNX ints (an attribute list or a constant tensor of any shape) as a flat list of ints."""
    return [int(v) for v in np.asarray(values).reshape(-1)]


def describe_node(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node producing {node.output[0]!r}"


class ConversionContext:
    """Constants, graph values, shapes and collected weights of one conversion."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, list[Optional[int]]]) -> None:
        self.builder = GraphBuilder()
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, Ref] = {}
        self.shapes = shapes
        self.state: dict[str, np.ndarray] = {}
        self.skipped: set[int] = set()  # ids of nodes absorbed by an earlier converter (MatMul + Add)
        self.folded_elements = 0  # elements of all constants folded so far (see onnx_folding)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.graph_outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self._buffers: dict[str, Ref] = {}
        self.shape_values: dict[str, Ref] = {}  # ONNX values held as Python lists of ints
        self._shape_tensors: dict[str, Ref] = {}

    # -- reading inputs ---------------------------------------------------
    def const(self, name: str) -> Optional[np.ndarray]:
        """The constant value of an ONNX value, or None if it is computed at run time."""
        return self.consts.get(name) if name else None

    def require_const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        value = self.const(node.input[index]) if index < len(node.input) else None
        if value is None:
            raise UnsupportedOperatorError(f"{describe_node(node)} has a non-constant {what}, which is not "
                                           "supported; export the model with constant weights/shapes")
        return value

    def optional_input(self, node: onnx.NodeProto, index: int) -> Optional[str]:
        return node.input[index] if index < len(node.input) and node.input[index] else None

    def axes(self, node: onnx.NodeProto) -> object:
        """The axes of a Reduce/Squeeze/Unsqueeze node, wherever its opset keeps them.

        Older opsets give an ``axes`` attribute, newer ones an optional second
        input: a list of ints when that input is constant, a graph value when it
        is computed at run time, None when the node gives no axes at all.
        """
        a = attributes(node)
        if "axes" in a:
            return int_list(a["axes"])
        if not self.optional_input(node, 1):
            return None
        const = self.const(node.input[1])
        return int_list(const) if const is not None else self.ref(node.input[1])

    def ref(self, name: str) -> Ref:
        """A graph value for ``name``, turning a constant into a buffer on first use."""
        if name in self.shape_values:
            if name not in self._shape_tensors:
                self._shape_tensors[name] = self.builder.add_node(
                    "call_function", "squeezestudio.shape_tensor", [self.shape_values[name]], hint=name)
            return self._shape_tensors[name]
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            return self._constant_ref(name, self.consts[name])
        raise UnsupportedOperatorError(f"the graph uses the value {name!r} before defining it")

    def _constant_ref(self, name: str, value: np.ndarray) -> Ref:
        if name in self._buffers:
            return self._buffers[name]
        tensor = torch.from_numpy(np.array(value, copy=True))
        path = self.builder.claim_path(f"const_{sanitize(name, 'c')}", "const")
        inline = not tensor.is_floating_point() and tensor.numel() <= MAX_INLINE_ELEMENTS
        if inline:
            self.builder.add_tensor(path, tuple(tensor.shape), tensor.dtype, "buffer", persistent=False,
                                    value=tensor)
        else:
            self.builder.add_tensor(path, tuple(tensor.shape), tensor.dtype, "buffer")
            self.state[path] = value
        ref = self.builder.add_node("get_attr", path, hint=path)
        self._buffers[name] = ref
        return ref

    def rank(self, name: str) -> Optional[int]:
        if name in self.consts:
            return self.consts[name].ndim
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    # -- writing outputs --------------------------------------------------
    def call(self, node: onnx.NodeProto, target: str, args: list | tuple, kwargs: Optional[dict] = None,
             op: str = "call_function") -> Ref:
        """Append a node computing ``node``'s first output."""
        ref = self.builder.add_node(op, target, args, kwargs, hint=node.output[0])
        self.values[node.output[0]] = ref
        return ref

    def call_outputs(self, node: onnx.NodeProto, target: str, args: list | tuple,
                     kwargs: Optional[dict] = None) -> None:
        """Append a node returning a tuple, and one ``getitem`` per used output of ``node``."""
        whole = self.builder.add_node("call_function", target, args, kwargs, hint=f"{node.output[0]}_all")
        for index, name in enumerate(node.output):
            if name:
                self.values[name] = self.builder.add_node("call_function", "operator.getitem", [whole, index],
                                                          hint=name)

    def call_shape(self, node: onnx.NodeProto, target: str, args: list | tuple) -> None:
        """Append a node computing a shape value (a Python list or int) for ``node``'s output."""
        self.shape_values[node.output[0]] = self.builder.add_node("call_function", target, args,
                                                                   hint=node.output[0])

    def shape_operand(self, name: str) -> Any:
        """A shape value's reference, or a small integer constant as a Python literal (else None)."""
        if name in self.shape_values:
            return self.shape_values[name]
        const = self.const(name)
        if const is not None and const.dtype.kind in "iu" and const.ndim <= 1:
            return [int(v) for v in const.reshape(-1)] if const.ndim == 1 else int(const)
        return None

    def alias(self, onnx_name: str, ref: Ref) -> None:
        self.values[onnx_name] = ref

    def layer(self, node: onnx.NodeProto, weight_name: str, type_name: str, args: dict[str, Any],
              weights: dict[str, np.ndarray], inputs: list[Ref]) -> Ref:
        """Create a real torch layer holding ``weights`` and call it on ``inputs``."""
        preferred = ""
        if weight_name.endswith(".weight") and len(weight_name) > len(".weight"):
            preferred = weight_name[: -len(".weight")]
        if not preferred:
            preferred = node.name.strip("/") or f"{node.op_type.lower()}"
        path = self.builder.claim_path(preferred, node.op_type.lower())
        self.builder.add_module(path, type_name, args)
        for key, value in weights.items():
            self.state[f"{path}.{key}"] = value
        return self.call(node, path, inputs, op="call_module")

    def only_consumer(self, name: str) -> Optional[onnx.NodeProto]:
        """The single node reading ``name`` (None if several, none, or it is a graph output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]
