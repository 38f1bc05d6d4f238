"""ONNX export: verified against onnxruntime, atomic, and convertible back by our importer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from squeezestudio.core.io import export_onnx as export_module
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.loading.onnx_import import load_onnx
from squeezestudio.core.model.handle import InputSpec, ModelHandle


def _handle() -> ModelHandle:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        module[1].running_var.uniform_(0.5, 2.0)
    spec = InputSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
    return ModelHandle(module=module.train(), name="tiny", input_spec=spec,
                       class_names=["cat", "dog", "owl"], source_format="zoo")


def test_export_matches_torch_and_reimports(tmp_path: Path) -> None:
    handle = _handle()
    path = tmp_path / "tiny.onnx"
    written = export_onnx(handle, path)
    assert written == path.stat().st_size > 0
    assert handle.module.training  # the caller's mode is restored
    onnx.checker.check_model(onnx.load(str(path)))
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["squeezestudio.class_names"]) == ["cat", "dog", "owl"]

    handle.module.eval()
    x = torch.randn(5, 1, 8, 8)  # a batch size never used during export: the batch is dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.max(np.abs(got - handle.module(x).detach().numpy())) <= 1e-4

    back = load_onnx(path)
    assert back.class_names == ["cat", "dog", "owl"] and back.input_spec == handle.input_spec
    assert torch.allclose(back.module(x), handle.module(x), atol=1e-4)
    assert {type(m) for m in back.module.modules()} >= {nn.Conv2d, nn.Linear}


def test_mismatching_export_is_refused_and_previous_file_kept(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    handle = _handle()
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    wrong = _handle()
    with torch.no_grad():
        wrong.module[5].bias.add_(1.0)  # a different model: its outputs differ from handle's
    monkeypatch.setattr(export_module, "_export", lambda module, example, opset: export_module._export_torchscript(
        wrong.module.eval(), example, opset))
    with pytest.raises(ExportError, match="differ"):
        export_onnx(handle, path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_missing_folder_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(_handle(), tmp_path / "no" / "such" / "folder" / "m.onnx")


def test_zoo_squeezenet_exports_and_converts_back(tmp_path: Path) -> None:
    from squeezestudio.core.model.zoo import build_model

    torch.manual_seed(1)
    module = build_model("squeezenet1_1", num_classes=10, in_channels=1, input_size=32).eval()
    with torch.no_grad():  # trained-like biases (the exporter drops all-zero biases)
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.1, 0.1)
    spec = InputSpec(channels=1, height=32, width=32, mean=(0.5,), std=(0.5,))
    handle = ModelHandle(module=module, name="squeezenet1_1", input_spec=spec,
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    path = tmp_path / "sq.onnx"
    export_onnx(handle, path)
    back = load_onnx(path)
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(back.module(x), module(x), atol=1e-4)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(back.module) == count(module)
    assert sum(isinstance(m, nn.Conv2d) for m in back.module.modules()) == \
           sum(isinstance(m, nn.Conv2d) for m in module.modules())


def test_imported_graph_with_shape_arithmetic_reexports_with_dynamic_batch(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    ints = lambda *v: np.array(v, np.int64)  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Shape", ["c"], ["s"]),
         helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
         helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
         helper.make_node("Reshape", ["c", "target"], ["flat"]),
         helper.make_node("Gemm", ["flat", "fc"], ["y"], transB=1, name="fc")],
        "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
                     numpy_helper.from_array(rng.standard_normal((3, 32)).astype(np.float32), "fc"),
                     numpy_helper.from_array(ints(0).reshape(()), "zero"),
                     numpy_helper.from_array(ints(0), "axes"), numpy_helper.from_array(ints(-1), "minus1")])
    source = tmp_path / "shapes.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    imported = load_onnx(source)
    target = tmp_path / "again.onnx"
    export_onnx(imported, target)  # verified inside at a batch size other than the example's
    again = load_onnx(target)
    x = torch.randn(7, 1, 4, 4)
    assert torch.allclose(again.module(x), imported.module(x), atol=1e-5)
