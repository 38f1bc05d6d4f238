"""Latency of the deployable exports: measured in onnxruntime, medians with the threads stated."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.latency import deployable_latency, onnx_latency
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.compression.registry import default_registry


def _handle() -> ModelHandle:
    module = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4))
    return ModelHandle(module=module.eval(), name="tiny", input_spec=InputSpec(1, 8, 8, (0.5,), (0.5,)),
                       class_names=list("abcd"), source_format="zoo")


def test_both_exports_are_timed_at_batch_one_and_the_chosen_batch() -> None:
    cm = compress(_handle(), Recipe(methods={"quantize": {"bits": 6}}), registry=default_registry())
    steps: list[float] = []
    results = deployable_latency(cm, calibration=torch.rand(16, 1, 8, 8), batch=4, threads=1, repeats=3,
                                 progress=lambda f, m="": steps.append(f))
    assert set(results) == {"onnx", "onnx-int8"}
    assert results["onnx-int8"].size_bytes < results["onnx"].size_bytes
    for target, r in results.items():
        assert r.batch1_ms > 0 and r.batch_ms > 0 and r.batch == 4 and r.threads == 1
        metrics = r.metrics()
        assert metrics[f"latency_{target}_b1_ms"] == r.batch1_ms
        assert metrics[f"latency_{target}_ms_per_image"] == pytest.approx(r.batch_ms / 4)
        assert "1 thread(s)" in r.describe()
    assert steps[-1] == 1.0 and steps == sorted(steps)


def test_bad_latency_requests_are_one_sentence(tmp_path) -> None:
    with pytest.raises(DataError, match="calibration"):
        deployable_latency(_handle(), targets=("onnx-int8",))
    with pytest.raises(DataError, match="unknown latency target"):
        deployable_latency(_handle(), targets=("tflite",))
    with pytest.raises(DataError, match="at least 1"):
        onnx_latency(b"", (1, 8, 8), batch=0)
