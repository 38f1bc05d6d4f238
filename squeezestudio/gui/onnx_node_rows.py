"""A plain list of an ONNX graph's operators, shown when the graph viewer cannot be embedded.

Without Qt WebEngine the netron drawing opens in a browser; the tab itself
still shows what the model is made of (operator, node, weight shapes), so
the pane is never empty and the compressed model's changes (a substituted
Fire module, a factorised layer) are visible at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

NodeRow = tuple[str, str, str]


def onnx_node_rows(path: Union[str, Path], limit: int = 2000) -> list[NodeRow]:
    """``(operator, node name, weight shapes)`` for each node, in graph order (weights: initializers)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {init.name: "\u00d7".join(str(d) for d in init.dims) for init in model.graph.initializer}
    rows: list[NodeRow] = []
    for i, node in enumerate(model.graph.node[:limit]):
        weights = ", ".join(shapes[name] for name in node.input if name in shapes and shapes[name])
        rows.append((node.op_type, node.name or f"node {i}", weights))
    return rows
