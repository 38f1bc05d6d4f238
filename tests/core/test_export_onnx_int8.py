"""int8 ONNX export: runs on onnxruntime's int8 kernels, keeps the model's own 8-bit weights exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.errors import DataError, ExportError
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.export_onnx_int8 import INT8_WEIGHT_LIMIT, export_onnx_int8, int8_kernel_ops
from squeezestudio.core.io.exports import export, format_for_path
from squeezestudio.core.measure.onnx_evaluation import OnnxRuntimeModule
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.compression.registry import default_registry


def _handle() -> ModelHandle:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
    spec = InputSpec(channels=1, height=16, width=16, mean=(0.5,), std=(0.5,))
    return ModelHandle(module=module.eval(), name="tiny", input_spec=spec,
                       class_names=[str(i) for i in range(10)], source_format="zoo")


def _images(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 16, 16, generator=g) * 2 - 1


def _dequantized_weights(path: Path) -> dict[str, np.ndarray]:
    """``(q - zero_point) * scale`` of every weight DequantizeLinear in the file, computed as onnxruntime does."""
    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    out = {}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0].endswith("weight_quantized"):
            q = inits[node.input[0]].astype(np.int32)
            shape = (-1,) + (1,) * (q.ndim - 1)
            z = inits[node.input[2]].astype(np.int32).reshape(shape)
            out[node.input[0][:-len("_quantized")]] = (q - z).astype(np.float32) * inits[node.input[1]].reshape(shape)
    return out


@pytest.mark.parametrize("options", [{"bits": 4}, {"bits": 8, "mode": "asymmetric"}])
def test_quantized_weights_are_written_exactly_and_run_on_int8_kernels(tmp_path: Path, options: dict) -> None:
    handle = _handle()
    cm = compress(handle, Recipe(methods={"prune": {"sparsity": 0.5}, "quantize": options}), registry=default_registry())
    path = tmp_path / "tiny.int8.onnx"
    result = export_onnx_int8(cm, path, _images())
    assert result.size_bytes == path.stat().st_size
    names = sorted(cm.encodings)
    assert sorted(result.exact_layers) == names and not result.quantized_layers
    weights = _dequantized_weights(path)
    for name in names:  # bit for bit the .sqz's weights: no second rounding
        assert np.array_equal(weights[name], cm.encodings[name].decode()), name
    kernels = int8_kernel_ops(path.read_bytes())
    assert kernels.get("QLinearConv") == 3 and kernels.get("QGemm", 0) + kernels.get("QLinearMatMul", 0) >= 1
    x = _images(200)
    with torch.no_grad():
        expected = cm.handle.module(x).argmax(1)
    got = OnnxRuntimeModule(path)(x).argmax(1)
    assert (got == expected).float().mean() >= 0.95


def test_clustered_weights_are_rounded_once_and_reported(tmp_path: Path) -> None:
    cm = compress(_handle(), Recipe(methods={"cluster": {"bits": 3}}), registry=default_registry())
    result = export_onnx_int8(cm, tmp_path / "c.onnx", _images(), method="entropy")
    assert sorted(result.rounded_layers) == sorted(cm.encodings)
    weights = _dequantized_weights(tmp_path / "c.onnx")
    for name, err in result.rounded_layers.items():
        dense = cm.encodings[name].decode()
        step = np.abs(dense).max() / INT8_WEIGHT_LIMIT
        assert err == pytest.approx(np.abs(weights[name] - dense).max()) and err <= step
        # within a channel each cluster value still maps to its own int8 value: no two clusters merge
        for row, dense_row in zip(weights[name].reshape(len(dense), -1), dense.reshape(len(dense), -1)):
            assert len(np.unique(row)) == len(np.unique(dense_row))


def test_int8_file_is_under_0_3x_the_float_file_and_bad_calibration_is_one_sentence(tmp_path: Path) -> None:
    handle = _handle()
    cm = compress(handle, Recipe(), registry=default_registry())
    float_size = export_onnx(handle, tmp_path / "float.onnx")
    written = export(cm, "onnx-int8", tmp_path / "m.int8.onnx", calibration=_images(), calibration_method="percentile")
    assert written <= 0.3 * float_size
    assert format_for_path(tmp_path / "m.int8.onnx") == "onnx-int8"
    with pytest.raises(ExportError, match="calibration images"):
        export(cm, "onnx-int8", tmp_path / "a.onnx")
    with pytest.raises(DataError, match="expects"):
        export_onnx_int8(cm, tmp_path / "a.onnx", torch.zeros(4, 3, 16, 16))
    with pytest.raises(ExportError, match="calibration method"):
        export_onnx_int8(cm, tmp_path / "a.onnx", _images(), method="median")
    assert not (tmp_path / "a.onnx").exists()
