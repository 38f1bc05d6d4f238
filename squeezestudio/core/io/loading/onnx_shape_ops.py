"""Shape arithmetic kept as Python ints: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.

Exporters often compute a reshape target from the input's shape (so the batch
size stays free). Converting those ops to tensor operations would make a
re-export bake the example's batch size in; keeping them as lists of ints
read from ``x.shape`` lets both torch exporters see dynamic sizes.
:func:`convert_in_shape_domain` handles a node this way when it can.
"""

from __future__ import annotations

import onnx

from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes

_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
_ARITH = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def _const_ints(ctx: ConversionContext, node: onnx.NodeProto, index: int, attr: str) -> list[int] | None:
    a = attributes(node)
    if attr in a:
        return [int(v) for v in a[attr]]
    name = ctx.optional_input(node, index)
    const = ctx.const(name) if name else None
    return None if const is None else [int(v) for v in const.reshape(-1)]


def convert_in_shape_domain(ctx: ConversionContext, node: onnx.NodeProto) -> bool:
    """Convert ``node`` as integer shape arithmetic; False if it does not qualify."""
    op, inputs = node.op_type, [n for n in node.input]
    first = inputs[0] if inputs else ""
    if op == "Shape":
        a = attributes(node)
        ctx.call_shape(node, "squeezestudio.shape_list", [ctx.ref(first), int(a.get("start", 0)), a.get("end")])
        return True
    if first not in ctx.shape_values and op not in ("Concat", *_ARITH):
        return False
    if op in ("Identity", "Cast"):
        if op == "Cast" and int(attributes(node)["to"]) not in _INT_TYPES:
            return False
        ctx.shape_values[node.output[0]] = ctx.shape_values[first]
        return True
    if op == "Gather":
        index = ctx.shape_operand(inputs[1])
        if int(attributes(node).get("axis", 0)) != 0 or index is None or inputs[1] in ctx.shape_values:
            return False
        ctx.call_shape(node, "squeezestudio.shape_pick", [ctx.shape_values[first], index])
        return True
    if op in ("Unsqueeze", "Squeeze"):
        axes = _const_ints(ctx, node, 1, "axes")
        if axes not in ([0], None) or (op == "Unsqueeze" and axes is None):
            return False
        target = "squeezestudio.shape_unsqueeze" if op == "Unsqueeze" else "squeezestudio.shape_squeeze"
        ctx.call_shape(node, target, [ctx.shape_values[first]])
        return True
    if op == "Slice":
        starts, ends = _const_ints(ctx, node, 1, "starts"), _const_ints(ctx, node, 2, "ends")
        axes, steps = _const_ints(ctx, node, 3, "axes"), _const_ints(ctx, node, 4, "steps")
        if starts is None or ends is None or len(starts) != 1 or axes not in (None, [0], [-1]):
            return False
        step = steps[0] if steps else 1
        if step <= 0:
            return False
        ctx.call_shape(node, "squeezestudio.shape_slice", [ctx.shape_values[first], starts[0], ends[0], step])
        return True
    operands = [ctx.shape_operand(n) for n in inputs]
    if not any(n in ctx.shape_values for n in inputs) or any(o is None for o in operands):
        return False
    if op == "Concat" and int(attributes(node)["axis"]) in (0, -1):
        ctx.call_shape(node, "squeezestudio.shape_concat", [operands])
        return True
    if op in _ARITH and len(operands) == 2:
        ctx.call_shape(node, "squeezestudio.shape_arith", [_ARITH[op], operands[0], operands[1]])
        return True
    return False
