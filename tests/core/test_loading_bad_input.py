"""Bad model files give one clear SqueezeStudioError each, and never run a file's code."""

from __future__ import annotations

import json
import pathlib
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from squeezestudio.core.errors import (
    ArchitectureMismatchError,
    ModelLoadError,
    SqueezeStudioError,
    UntrustedCodeError,
)
from squeezestudio.core.io.loading import load_model, save_safetensors, save_state_dict
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that a loader ran the file's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture
def small_handle():
    torch.manual_seed(0)
    return zoo_handle("lenet5", num_classes=4, input_size=16)


def _one_sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.pt", registry=default_registry())


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_model(tmp_path, registry=default_registry())


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(tmp_path / "empty.pth", registry=default_registry())


@pytest.mark.parametrize("saver", [save_state_dict, save_safetensors,
                                   lambda h, p: torch.save(h.module.state_dict(), p,
                                                           _use_new_zipfile_serialization=False)])
def test_truncated_checkpoint(tmp_path: Path, small_handle, saver) -> None:
    path = tmp_path / "model.pt"
    saver(small_handle, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as info:
        load_model(path, registry=default_registry())
    _one_sentence(info.value)


def test_unknown_content(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_bytes(b"hello, this is not a model at all")
    with pytest.raises(ModelLoadError, match="not a model format"):
        load_model(tmp_path / "notes.pt", registry=default_registry())


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.pt", "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(ModelLoadError, match="not a PyTorch checkpoint"):
        load_model(tmp_path / "a.pt", registry=default_registry())


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(2)}, "extra": _TouchOnUnpickle(marker)}
    if zip_format:
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    with pytest.raises(UntrustedCodeError, match="--trust") as info:
        load_model(path, registry=default_registry())
    assert "could run code" in _one_sentence(info.value)
    assert not marker.exists()
    # The same file really does run code when unpickled unsafely: the check above means something.
    if zip_format:
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_keys_that_do_not_fit_the_architecture(tmp_path: Path, small_handle) -> None:
    state = small_handle.module.state_dict()
    state["head.weight"] = state.pop("fc3.weight")
    state["head.bias"] = state.pop("fc3.bias")
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(ArchitectureMismatchError) as info:
        load_model(tmp_path / "renamed.pt", arch="lenet5", registry=default_registry())
    message = _one_sentence(info.value)
    assert "2 missing (fc3.weight, fc3.bias)" in message
    assert "2 unexpected (head.weight, head.bias)" in message


def test_shapes_that_do_not_fit_the_architecture(tmp_path: Path, small_handle) -> None:
    torch.save(small_handle.module.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ArchitectureMismatchError) as info:
        load_model(tmp_path / "w.pt", arch="lenet5", arch_kwargs={"num_classes": 9}, registry=default_registry())
    message = _one_sentence(info.value)
    assert "fc3.weight: expected (9, 84), got (4, 84)" in message
    assert "2 with the wrong shape" in message


def test_unrecognised_state_dict_names_the_closest_architecture(tmp_path: Path, small_handle) -> None:
    state = small_handle.module.state_dict()
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ArchitectureMismatchError, match="closest is lenet5") as info:
        load_model(tmp_path / "w.pt", registry=default_registry())
    assert "extra.weight" in info.value.args[0] and "--arch" in info.value.args[0]


def test_state_dict_with_unrelated_keys(tmp_path: Path) -> None:
    torch.save({"encoder.block.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
    with pytest.raises(ArchitectureMismatchError, match="match no known architecture"):
        load_model(tmp_path / "w.pt", registry=default_registry())


@pytest.mark.parametrize("content, message", [
    ({"epoch": 3, "lr": 0.1}, "holds no weight tensors"),
    ([torch.zeros(2)], "not a state_dict"),
])
def test_checkpoints_without_a_state_dict(tmp_path: Path, content, message: str) -> None:
    torch.save(content, tmp_path / "c.pt")
    with pytest.raises(ModelLoadError, match=message):
        load_model(tmp_path / "c.pt", registry=default_registry())


def test_metadata_from_a_newer_version(tmp_path: Path, small_handle) -> None:
    save_state_dict(small_handle, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["squeezestudio"]["version"] = 99
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(ModelLoadError, match="newer SqueezeStudio"):
        load_model(tmp_path / "m.pt", registry=default_registry())


def test_damaged_safetensors_header(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'  # no closing brace
    (tmp_path / "m.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(ModelLoadError, match="damaged safetensors header"):
        load_model(tmp_path / "m.safetensors", registry=default_registry())


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "resnet101"}, "unknown architecture 'resnet101'"),
    ({"arch": "lenet5", "arch_kwargs": {"width": 2}}, "unknown architecture argument"),
    ({"arch_kwargs": {"num_classes": 4}}, "need an architecture"),
])
def test_bad_arguments(tmp_path: Path, small_handle, kwargs: dict, message: str) -> None:
    torch.save(small_handle.module.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ModelLoadError, match=message):
        load_model(tmp_path / "w.pt", **kwargs, registry=default_registry())


def test_python_file_without_factory_and_stray_weights(tmp_path: Path, small_handle) -> None:
    with pytest.raises(ModelLoadError, match="name the function"):
        load_model(tmp_path / "model.py", registry=default_registry())
    save_safetensors(small_handle, tmp_path / "m.safetensors")
    with pytest.raises(ModelLoadError, match="already holds its weights"):
        load_model(tmp_path / "m.safetensors", weights=tmp_path / "m.safetensors", registry=default_registry())


def test_every_error_is_a_squeezestudio_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"not": "a model"}))
    with pytest.raises(SqueezeStudioError):
        load_model(tmp_path / "x.json", registry=default_registry())
