"""Constant folding under a budget, control flow never run, and the importer defects of issue 9."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from squeezestudio.core.errors import UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_folding import MAX_FOLDED_ELEMENTS
from squeezestudio.core.io.loading.onnx_import import convert_onnx, load_onnx, onnx_to_module
from squeezestudio.core.model.graph_spec.module import build_graph_module


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _matches_ort(model: onnx.ModelProto, x: np.ndarray) -> None:
    module = onnx_to_module(model)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    want = _ort(model, x)
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)


def _info(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_unsigned_constants_load(dtype) -> None:
    offsets = np.array([1, 2, 70000 if dtype != np.uint16 else 600], dtype=dtype)
    model = _model([helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
                    helper.make_node("Add", ["x", "cf"], ["y"])],
                   [_info("x", ["N", 3])], [_info("y", ["N", 3])], [numpy_helper.from_array(offsets, "c")])
    _matches_ort(model, np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))


def test_five_d_batch_norm_and_rank_one_flatten_match_onnxruntime() -> None:
    rng = np.random.default_rng(1)
    stats = [numpy_helper.from_array(rng.uniform(0.5, 1.5, 3).astype(np.float32), n) for n in "sbmv"]
    bn = _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
                [_info("x", [2, 3, 2, 3, 4])], [_info("y", [2, 3, 2, 3, 4])], stats)
    _matches_ort(bn, rng.standard_normal((2, 3, 2, 3, 4)).astype(np.float32))
    flat = _model([helper.make_node("Flatten", ["x"], ["y"], axis=1)], [_info("x", [5])], [_info("y", [5, 1])])
    _matches_ort(flat, rng.standard_normal(5).astype(np.float32))


def test_symmetric_wide_average_pool_padding_is_computed_not_refused() -> None:
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[2, 2, 2, 2], strides=[2, 2])
    model = _model([node], [_info("x", [1, 2, 7, 7])], [_info("y", None)])
    _matches_ort(model, np.random.default_rng(2).standard_normal((1, 2, 7, 7)).astype(np.float32))


def test_training_dropout_and_maxpool_indices_are_refused_clearly() -> None:
    dropout = _model([helper.make_node("Dropout", ["x", "r", "t"], ["y"])], [_info("x", [1, 4])], [_info("y", [1, 4])],
                     [numpy_helper.from_array(np.array(0.5, np.float32), "r"),
                      numpy_helper.from_array(np.array(True), "t")])
    with pytest.raises(UnsupportedOperatorError, match="Dropout.*training mode"):
        onnx_to_module(dropout)
    pool = _model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])],
                  [_info("x", [1, 1, 4, 4])], [_info("y", None), _info("i", None, TensorProto.INT64)])
    with pytest.raises(UnsupportedOperatorError, match="MaxPool.*Indices"):
        onnx_to_module(pool)


def test_shape_to_constant_of_shape_graph_loads_and_keeps_the_batch_free() -> None:
    """Shape -> Slice -> Concat -> ConstantOfShape: runs as shape arithmetic, so any batch works."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["ones"],
                              value=numpy_helper.from_array(np.array([3.0], np.float32))),
             helper.make_node("Mul", ["x", "ones"], ["y"])]
    model = _model(nodes, [_info("x", ["N", 4])], [_info("y", ["N", 4])])
    module = onnx_to_module(model)
    x = torch.randn(5, 4)
    assert torch.allclose(module(x), 3 * x)


def test_constant_subgraphs_fold_into_constants() -> None:
    """Range -> Reshape -> Tile on constants becomes one constant buffer, not nodes."""
    i64 = lambda v, n: numpy_helper.from_array(np.array(v, np.int64), n)  # noqa: E731
    nodes = [helper.make_node("Range", ["a", "b", "c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["r2"]),
             helper.make_node("Cast", ["r2"], ["rf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "rf"], ["y"])]
    model = _model(nodes, [_info("x", ["N", 2, 3])], [_info("y", ["N", 2, 3])],
                   [i64(0, "a"), i64(6, "b"), i64(1, "c"), i64([2, 3], "shape")])
    conversion = convert_onnx(model)
    targets = [n.get("target") for n in conversion.graph["nodes"]]
    assert targets.count("torch.add") == 1 and len(conversion.graph["nodes"]) == 4  # input, constant, add, output
    x = torch.randn(2, 2, 3)
    assert torch.allclose(conversion.build()(x), x + torch.arange(6.0).reshape(2, 3))


def test_folding_refuses_huge_constants_before_making_them() -> None:
    side = int(MAX_FOLDED_ELEMENTS ** 0.5) * 2
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])]
    model = _model(nodes, [_info("x", [1])], [_info("y", None)],
                   [numpy_helper.from_array(np.array([side, side], np.int64), "shape")])
    with pytest.raises(UnsupportedOperatorError, match="ConstantOfShape.*elements"):
        onnx_to_module(model)


def test_control_flow_on_constants_is_never_run() -> None:
    body = helper.make_graph([helper.make_node("Identity", ["v"], ["v_out"]),
                              helper.make_node("Identity", ["cond"], ["cond_out"])], "body",
                             [_info("i", [], TensorProto.INT64), _info("cond", [], TensorProto.BOOL), _info("v", [1])],
                             [_info("cond_out", [], TensorProto.BOOL), _info("v_out", [1])])
    nodes = [helper.make_node("Loop", ["n", "t", "v0"], ["v_final"], body=body),
             helper.make_node("Add", ["x", "v_final"], ["y"])]
    inits = [numpy_helper.from_array(np.array(10**9, np.int64), "n"), numpy_helper.from_array(np.array(True), "t"),
             numpy_helper.from_array(np.array([1.0], np.float32), "v0")]
    model = _model(nodes, [_info("x", [1])], [_info("y", [1])], inits)
    with pytest.raises(UnsupportedOperatorError, match="Loop.*never runs subgraph"):
        onnx_to_module(model)


def test_convolutional_head_output_is_flattened_to_class_scores(tmp_path: Path) -> None:
    """SqueezeNet's export ends in [N, C, 1, 1]; the converted module returns [N, C]."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((10, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    model = _model(nodes, [_info("x", [1, 3, 8, 8])], [_info("y", [1, 10, 1, 1])], [w], opset=11)
    path = tmp_path / "head.onnx"
    onnx.save(model, str(path))
    handle = load_onnx(path)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    # The final Softmax is left out (the module returns logits) and recorded; softmax gives the file's output.
    assert handle.final_activation == "softmax"
    got = torch.softmax(handle.module(torch.from_numpy(x)), dim=1).detach().numpy()
    assert got.shape == (1, 10) and np.allclose(got, _ort(model, x).reshape(1, 10), atol=1e-6)
    rebuilt = build_graph_module(json.loads(json.dumps(handle.architecture.graph)))
    rebuilt.load_state_dict(handle.module.state_dict())
    assert torch.equal(rebuilt.eval()(torch.from_numpy(x)), handle.module(torch.from_numpy(x)))
