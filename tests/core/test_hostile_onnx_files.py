"""ONNX files that lie about their tensors or ask for unbounded work: refused before decoding or running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import hostile_builders as hb
from squeezestudio.core.errors import ModelLoadError, UnsafeModelFileError
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.compression.registry import default_registry


@pytest.mark.parametrize("build, error, needle", [
    (hb.onnx_short_raw_data, ModelLoadError, "stores 20 bytes"),
    (hb.onnx_huge_dims, ModelLoadError, "elements_per_byte"),
    (hb.onnx_external_self, UnsafeModelFileError, "names the model file itself"),
    (lambda p: hb.onnx_mlp(p, input_shape=(1, 1, 30000, 30000)), ModelLoadError, "input_elements"),
    (hb.onnx_loop, ModelLoadError, "trip count of the Loop"),
])
def test_hostile_onnx_is_refused_before_anything_runs(tmp_path: Path, build, error, needle: str) -> None:
    path = build(tmp_path / "m.onnx")
    start = time.perf_counter()
    with pytest.raises(error, match=needle):
        load_model(path, registry=default_registry())
    assert time.perf_counter() - start < 5.0


def test_a_sound_onnx_file_still_loads(tmp_path: Path) -> None:
    handle = load_model(hb.onnx_mlp(tmp_path / "ok.onnx"), registry=default_registry())
    assert handle.num_classes == 3
