"""ONNX import time per node: is conversion linear in the number of nodes?

Builds chains of ``Mul -> Add -> Relu`` nodes on a [N, 8] input (every Mul
and Add reads its own small constant, as exported graphs do), converts each
with :func:`convert_onnx` and builds the module, and prints the time per
node for each length. A linear converter shows the same time per node at
5,000 and at 100,000 nodes; the ratio of the two is printed last (1.0 is
linear; the quadratic converter this replaced took 29 s for 5,000 nodes).
Run: ``python benchmarks/bench_onnx_import.py [--sizes 5000 20000 100000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from squeezestudio.core.io.loading.onnx_import import convert_onnx


def chain(length: int) -> onnx.ModelProto:
    """A graph of ``length`` nodes: Mul, Add, Relu repeated, each with its own constant."""
    nodes, inits, previous = [], [], "x"
    rng = np.random.default_rng(0)
    for i in range(length):
        kind = ("Mul", "Add", "Relu")[i % 3]
        out = f"v{i}"
        if kind == "Relu":
            nodes.append(helper.make_node("Relu", [previous], [out], name=f"relu_{i}"))
        else:
            const = f"c{i}"
            inits.append(numpy_helper.from_array(rng.uniform(0.9, 1.1, 8).astype(np.float32), const))
            nodes.append(helper.make_node(kind, [previous, const], [out], name=f"{kind.lower()}_{i}"))
        previous = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["N", 8])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def time_import(length: int) -> float:
    model = chain(length)
    start = time.perf_counter()
    module = convert_onnx(model).build()
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        assert module(torch.ones(2, 8)).shape == (2, 8)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    args = parser.parse_args()
    per_node = {}
    for size in args.sizes:
        seconds = time_import(size)
        per_node[size] = seconds / size
        print(f"{size:>7} nodes: {seconds:7.2f} s  ({1e6 * seconds / size:6.1f} us per node)")
    smallest, largest = min(per_node), max(per_node)
    print(f"time per node at {largest} nodes / at {smallest} nodes: {per_node[largest] / per_node[smallest]:.2f} "
          "(1.0 = linear)")


if __name__ == "__main__":
    main()
