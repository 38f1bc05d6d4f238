"""ONNX -> torch conversion: exported tiny CNNs, hand-built graphs, unsupported ops, trainability."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from squeezestudio.core.compression.replay import build_module
from squeezestudio.core.errors import ModelLoadError, UnsupportedOperatorError
from squeezestudio.core.io.loading.onnx_import import META_CLASS_NAMES, load_onnx, onnx_to_module
from squeezestudio.core.model.handle import ArchitectureSpec
from squeezestudio.core.compression.registry import default_registry


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.side = nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.stem(x)))
        y = y + self.branch(y)                       # residual add
        y = torch.cat([y, self.side(y)], dim=1)      # concat
        y = nn.functional.max_pool2d(y, 2)
        y = nn.functional.hardswish(y)
        y = torch.clamp(y, 0.0, 6.0)
        return self.fc(y.reshape(y.shape[0], -1))


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = _Residual()
    with torch.no_grad():  # non-trivial batch-norm statistics
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _export_torchscript(model: nn.Module, path: Path, fold: bool = True) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"], do_constant_folding=fold,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def _ort(path_or_model, x: np.ndarray) -> np.ndarray:
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _assert_matches_ort(module: nn.Module, onnx_source, shape: tuple[int, ...]) -> None:
    for batch in (1, 3):
        x = torch.randn(batch, *shape[1:])
        with torch.no_grad():
            got = module(x).numpy()
        want = _ort(onnx_source, x.numpy())
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= 1e-4


@pytest.mark.parametrize("fold", [True, False])
def test_torchscript_export_converts_to_matching_layers(tmp_path: Path, fold: bool) -> None:
    torch.manual_seed(1)
    path = _export_torchscript(_model(), tmp_path / "tiny.onnx", fold=fold)
    handle = load_onnx(path)
    _assert_matches_ort(handle.module, path, (1, 1, 8, 8))
    kinds = {type(m) for m in handle.module.modules()}
    assert nn.Conv2d in kinds and nn.Linear in kinds
    assert (nn.BatchNorm2d in kinds) == (not fold)  # unfolded export keeps BatchNormalization
    assert handle.source_format == "onnx"
    assert handle.class_names == [f"class {i}" for i in range(5)]
    assert (handle.input_spec.channels, handle.input_spec.height, handle.input_spec.mean) == (1, 8, (0.5,))
    assert "fc.weight" in dict(handle.module.named_parameters())


def test_dynamo_export_converts(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = _model()
    path = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), str(path), dynamo=True, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    handle = load_onnx(path)
    _assert_matches_ort(handle.module, path, (1, 1, 8, 8))
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(handle.module(x), model(x), atol=1e-4)
    names = dict(handle.module.named_parameters())
    assert {"stem.weight", "branch.weight", "side.weight", "fc.weight"} <= set(names)


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name), name=f"const_{name}")


def _hand_built() -> onnx.ModelProto:
    """A graph whose weights are Constant nodes and which exercises the less common ops."""
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    nodes = [
        _const("w1", f32(4, 2, 3, 3)), _const("b1", f32(4)),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="/block/conv", pads=[1, 0, 2, 1]),
        _const("lo", np.array(-0.5, np.float32)), _const("hi", np.array(1.5, np.float32)),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["clip"], name="clip"),
        helper.make_node("HardSigmoid", ["clip"], ["hs"], alpha=0.3, beta=0.4),
        helper.make_node("Mul", ["clip", "hs"], ["mul"]),
        helper.make_node("MaxPool", ["mul"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], pads=[0, 0, 1, 1],
                         count_include_pad=1),
        _const("pads", np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64)),
        helper.make_node("Pad", ["ap", "pads"], ["pad"], mode="constant"),
        helper.make_node("Transpose", ["pad"], ["tr"], perm=[0, 1, 3, 2]),
        helper.make_node("Identity", ["tr"], ["id"]),
        helper.make_node("Dropout", ["id"], ["drop"]),
        helper.make_node("Shape", ["drop"], ["shape"]),
        _const("zero", np.array(0, np.int64)),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        _const("ax0", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["batch", "ax0"], ["batch1"]),
        _const("minus1", np.array([-1], np.int64)),
        helper.make_node("Concat", ["batch1", "minus1"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["drop", "newshape"], ["flat"]),
        _const("wm", f32(80, 6)), _const("bm", f32(6)),
        helper.make_node("MatMul", ["flat", "wm"], ["mm"], name="head/matmul"),
        helper.make_node("Add", ["mm", "bm"], ["lin"]),
        helper.make_node("Sigmoid", ["lin"], ["sig"]),
        _const("wg", f32(6, 3)), _const("bg", f32(3)),
        helper.make_node("Gemm", ["sig", "wg", "bg"], ["gemm"], alpha=0.5, beta=2.0, transB=0),
        helper.make_node("Softmax", ["gemm"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "handmade",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 7, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_constant_node_weights_and_less_common_ops(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = _hand_built()
    module = onnx_to_module(model)
    _assert_matches_ort(module, model, (1, 2, 7, 6))
    layers = {name: type(m) for name, m in module.named_modules()}
    assert layers["block_conv"] is nn.Conv2d  # readable name from "/block/conv"
    linears = [name for name, t in layers.items() if t is nn.Linear]
    assert len(linears) == 2  # MatMul+Add and Gemm both became nn.Linear
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    handle = load_onnx(path)
    assert handle.input_spec.channels == 2 and handle.class_names == ["class 0", "class 1", "class 2"]


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_trans_b_maps_onto_linear_weight(trans_b: int) -> None:
    rng = np.random.default_rng(trans_b)
    w = rng.standard_normal((3, 5) if trans_b else (5, 3)).astype(np.float32)
    c = rng.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "c"], ["y"], transB=trans_b, name="fc")],
        "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    module = onnx_to_module(model)
    linear = module.get_submodule("fc")
    assert isinstance(linear, nn.Linear) and tuple(linear.weight.shape) == (3, 5)
    expected = w if trans_b else w.T
    assert np.allclose(linear.weight.detach().numpy(), expected)
    _assert_matches_ort(module, model, (1, 5, 1, 1))


@pytest.mark.parametrize("op", ["LSTM", "NonMaxSuppression"])
def test_unsupported_operator_is_named(op: str) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="ok"),
         helper.make_node(op, ["r"], ["y"], name="the_bad_node")],
        "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOperatorError) as info:
        onnx_to_module(model)
    assert op in str(info.value) and "the_bad_node" in str(info.value)


def test_converted_module_is_trainable(tmp_path: Path) -> None:
    torch.manual_seed(4)
    handle = load_onnx(_export_torchscript(_model(), tmp_path / "t.onnx"))
    module = handle.module.train()
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(c.weight, nn.Parameter) for c in convs)
    x, target = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    loss = nn.functional.cross_entropy(module(x), target)
    loss.backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)
    before = module(x).detach()
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert not torch.allclose(module(x).detach(), before)


def test_architecture_rebuilds_onnx_graph_without_the_file(tmp_path: Path) -> None:
    torch.manual_seed(5)
    handle = load_onnx(_export_torchscript(_model(), tmp_path / "a.onnx", fold=False))
    spec = ArchitectureSpec.from_dict(json.loads(json.dumps(handle.architecture.to_dict())))
    rebuilt = build_module(spec, registry=default_registry())
    original = handle.module.state_dict()
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in original.items()}
    assert all(float(p.detach().abs().sum()) == 0.0 for p in rebuilt.parameters())  # no weights in the description
    rebuilt.load_state_dict(original, strict=True)
    rebuilt.eval()
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(rebuilt(x), handle.module(x))


def test_baked_batch_reshape_generalises_and_metadata_names_classes(tmp_path: Path) -> None:
    w = np.random.default_rng(6).standard_normal((4, 12)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["f"]),
         helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)],
        "baked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(np.array([1, 12], np.int64), "s"), numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.metadata_props.add(key=META_CLASS_NAMES, value=json.dumps(["a", "b", "c", "d"]))
    path = tmp_path / "baked.onnx"
    onnx.save(model, str(path))
    handle = load_onnx(path)
    x = torch.randn(5, 3, 2, 2)
    assert torch.allclose(handle.module(x), x.reshape(5, 12) @ torch.from_numpy(w).T, atol=1e-5)
    assert handle.class_names == ["a", "b", "c", "d"]


def test_models_that_are_not_image_classifiers_are_refused(tmp_path: Path) -> None:
    two_inputs = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(ModelLoadError, match="2 inputs"):
        onnx_to_module(helper.make_model(two_inputs))
    flat = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["y"])], "flat",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(flat), str(path))
    with pytest.raises(ModelLoadError, match="NCHW"):
        load_onnx(path)


def test_buffer_of_exported_bytes_roundtrip() -> None:
    """onnx_to_module works on an in-memory proto (no file involved)."""
    torch.manual_seed(7)
    buffer = io.BytesIO()
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 2), nn.Softmax(dim=1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 5, 5),), buffer, dynamo=False,
                          dynamic_axes={"x": {0: "n"}}, input_names=["x"])
    module = onnx_to_module(onnx.load_from_string(buffer.getvalue()))
    x = torch.randn(3, 3, 5, 5)
    assert torch.allclose(module(x), model(x), atol=1e-5)


def test_unsupported_ops_on_constants_are_folded() -> None:
    """ConstantOfShape is not convertible, but on constant inputs it is computed once at import."""
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                          value=numpy_helper.from_array(np.array([2.0], np.float32))),
         helper.make_node("Add", ["x", "ones"], ["y"])],
        "folded", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.array([1, 3], np.int64), "shape")])
    module = onnx_to_module(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = torch.randn(4, 3)
    assert torch.allclose(module(x), x + 2.0)
