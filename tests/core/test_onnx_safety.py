"""Opening untrusted ONNX files: bad files give plain errors, external data is checked before it is read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from squeezestudio.core.errors import ModelLoadError, UnsafeModelFileError
from squeezestudio.core.io.loading import onnx_safety
from squeezestudio.core.io.loading.onnx_import import load_onnx
from squeezestudio.core.io.loading.onnx_safety import load_onnx_model

WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)],
        "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(WEIGHT, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _with_external(folder: Path, location: str, offset: int = 0, length: int | None = None) -> Path:
    """Save the model with its weight pointing at ``location`` (written by hand, not via onnx)."""
    model = _model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset),
               "length": str(WEIGHT.nbytes if length is None else length)}
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every external-data read the loader performs."""
    calls: list[Path] = []
    original = onnx_safety._read_into

    def spy(ref: onnx_safety.ExternalRef) -> None:
        calls.append(ref.path)
        original(ref)

    monkeypatch.setattr(onnx_safety, "_read_into", spy)
    return calls


def test_valid_external_data_is_loaded(tmp_path: Path, reads: list[Path]) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 8 + WEIGHT.tobytes())
    handle = load_onnx(_with_external(tmp_path, "weights.bin", offset=8))
    assert len(reads) == 1
    x = torch.randn(2, 4, 1, 1)
    assert torch.allclose(handle.module(x), x.reshape(2, 4) @ torch.from_numpy(WEIGHT).T, atol=1e-6)


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin", "..\\outside.bin"])
def test_parent_directory_is_refused_before_reading(tmp_path: Path, reads: list[Path], location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "sub").mkdir()
    # outside.bin does not exist: a "missing file" error would prove we looked; we must refuse first.
    with pytest.raises(UnsafeModelFileError, match="outside the model's folder"):
        load_onnx_model(_with_external(folder, location))
    assert reads == []


def test_absolute_path_is_refused_even_if_the_file_exists(tmp_path: Path, reads: list[Path]) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(WEIGHT.tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    for location in (str(secret), str(tmp_path / "does-not-exist.bin"), "C:\\Windows\\secret.bin"):
        with pytest.raises(UnsafeModelFileError):
            load_onnx_model(_with_external(folder, location))
    assert reads == []


def test_symlink_leading_out_of_the_folder_is_refused(tmp_path: Path, reads: list[Path]) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(WEIGHT.tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(secret, folder / "weights.bin")
    with pytest.raises(UnsafeModelFileError):
        load_onnx_model(_with_external(folder, "weights.bin"))
    assert reads == []


@pytest.mark.parametrize("offset,length", [(0, 4 * 48), (40, 48), (-1, 48)])
def test_offset_and_length_must_lie_inside_the_file(tmp_path: Path, reads: list[Path],
                                                     offset: int, length: int) -> None:
    (tmp_path / "weights.bin").write_bytes(WEIGHT.tobytes())  # 48 bytes
    with pytest.raises(UnsafeModelFileError):
        load_onnx_model(_with_external(tmp_path, "weights.bin", offset=offset, length=length))
    assert reads == []


def test_missing_or_wrong_sized_external_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="missing"):
        load_onnx_model(_with_external(tmp_path, "absent.bin"))
    (tmp_path / "short.bin").write_bytes(WEIGHT.tobytes()[:20])
    with pytest.raises(ModelLoadError, match="needs 48 bytes"):
        load_onnx_model(_with_external(tmp_path, "short.bin", length=20))


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a model\n", "truncated"])
def test_broken_files_give_a_plain_load_error(tmp_path: Path, content) -> None:
    path = tmp_path / "broken.onnx"
    if content == "truncated":
        data = _model().SerializeToString()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "broken.onnx" in message and "\n" not in message
    assert not isinstance(info.value, UnsafeModelFileError)


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")
