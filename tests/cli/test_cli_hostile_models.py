"""Hostile model files through the command line: one sentence, exit 2, < 1 GB more memory, < 5 s.

Every file here is a few kilobytes that describes gigabytes or hours of work
(issue 15's list). Without the budgets each of them allocated 2-51 GB, ran
for minutes or ended in a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import hostile_builders as hb
from hostile_cli import assert_refused, run_hostile
from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.compression.registry import default_registry


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile_models")


@pytest.fixture(scope="module")
def sqz_blob() -> bytes:
    return hb.sqz_bytes()


def _input(**changes):
    def edit(meta):
        meta["input_spec"].update(changes)
    return edit


def _huge_linear_graph() -> dict:
    spec = describe_architecture(nn.Sequential(nn.Flatten(), nn.Linear(4, 4))).to_dict()
    spec["graph"]["modules"][1]["args"].update(in_features=40000, out_features=40000)
    return spec


def test_stride0_view_is_refused_by_its_element_count(capsys, folder: Path) -> None:
    path = hb.stride0_checkpoint(folder / "stride0.pt")
    assert path.stat().st_size < 4096
    line = assert_refused(run_hostile(capsys, "inspect", path), "10,000,000,000 elements", "--limit")
    assert "elements_per_byte" in line


def test_sqz_with_ten_million_classes_is_refused_before_building(capsys, folder: Path, sqz_blob: bytes) -> None:
    def edit(meta):
        meta["architecture"]["kwargs"]["num_classes"] = 10_000_000
    path = folder / "classes.sqz"
    path.write_bytes(hb.edit_sqz_header(sqz_blob, edit))
    assert_refused(run_hostile(capsys, "inspect", path), "architecture", "--limit sqz_elements_per_byte")


def test_weight_free_graph_with_a_huge_linear_is_refused_before_building(capsys, folder: Path) -> None:
    def edit(meta):
        meta["architecture"] = _huge_linear_graph()
    path = hb.checkpoint_with_metadata(folder / "graph.pt", hb.small_handle(), edit, weights=False)
    assert_refused(run_hostile(capsys, "inspect", path), "do not fit", "1.weight")


@pytest.mark.parametrize("command", ["inspect", "classify"])
def test_huge_input_spec_is_refused(capsys, folder: Path, command: str, tmp_path: Path) -> None:
    path = hb.checkpoint_with_metadata(folder / "wide_input.pt", hb.small_handle(), _input(height=20000, width=20000))
    argv = ["inspect", path] if command == "inspect" else ["classify", path, str(tmp_path / "x.png")]
    assert_refused(run_hostile(capsys, *argv), "20000x20000", "--limit input_elements")


@pytest.mark.parametrize("changes, needle", [
    ({"height": 29, "width": 29}, "does not accept 1x29x29"),
    ({"channels": 0}, "channels must be a positive"),
    ({"height": -5}, "height must be a positive"),
])
def test_input_spec_contradicting_the_model(capsys, folder: Path, changes: dict, needle: str) -> None:
    path = hb.checkpoint_with_metadata(folder / "spec.pt", hb.mlp_handle(), _input(**changes))
    assert_refused(run_hostile(capsys, "eval", path), needle)


def test_hash_bomb_pickle_is_refused_before_unpickling(capsys, folder: Path) -> None:
    path = hb.torch_zip(folder / "hash_bomb.pt", hb.hash_bomb_pickle(60))
    assert_refused(run_hostile(capsys, "inspect", path), "not unpickled", "pickle_nodes")


def test_name_of_shared_nested_lists_is_refused(capsys, folder: Path) -> None:
    path = hb.torch_zip(folder / "nested_name.pt", hb.nested_list_name_pickle(40))
    assert_refused(run_hostile(capsys, "inspect", path), "not unpickled")


@pytest.mark.parametrize("where", ["safetensors header", "checkpoint metadata", "sqz metadata"])
def test_deep_json_is_refused_without_recursion(capsys, folder: Path, sqz_blob: bytes, where: str) -> None:
    path = folder / f"deep_{where.replace(' ', '_')}.safetensors"
    if where == "safetensors header":
        path.write_bytes(hb.safetensors_bytes(('{"a": ' + hb.deep_json() + "}").encode()))
    elif where == "checkpoint metadata":
        hb.safetensors_with_metadata(path, hb.small_handle(),
                                     '{"format": "squeezestudio-checkpoint", "name": ' + hb.deep_json() + "}")
    else:
        container, data = hb.split_safetensors(sqz_blob)
        container["__metadata__"] = {"format": "squeezestudio-sqz", "squeezestudio": hb.deep_json()}
        path.write_bytes(hb.safetensors_bytes(container, data))
    assert_refused(run_hostile(capsys, "inspect", path), "nesting depth", "json_depth")


@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.bool])
def test_integer_and_bool_weights_are_refused(capsys, folder: Path, dtype: torch.dtype) -> None:
    path = hb.typed_checkpoint(folder / f"{dtype}.pt".replace("torch.", ""), dtype)
    kind = str(dtype).replace("torch.", "")
    assert_refused(run_hostile(capsys, "eval", path, "--data", "none"), f"as {kind}", "floating-point")


def test_complex_weights_are_refused_at_load(capsys, folder: Path) -> None:
    path = hb.typed_checkpoint(folder / "complex.pt", torch.complex64)
    assert_refused(run_hostile(capsys, "inspect", path), "complex64")


def test_float8_weights_are_converted_with_a_notice(capsys, folder: Path) -> None:
    path = hb.typed_checkpoint(folder / "float8.pt", torch.float8_e4m3fn)
    code, out, err, _ = run_hostile(capsys, "inspect", path)
    assert code == 0, err
    assert "float8_e4m3fn were converted to float32" in out


def test_sqz_codebook_with_nan_is_refused(capsys, folder: Path) -> None:
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress
    from squeezestudio.core.compression.recipe import Recipe

    cm = compress(hb.small_handle(), Recipe(methods={"cluster": {"bits": 2}}), registry=default_registry())
    name = next(n for n, e in cm.encodings.items() if e.codebook is not None)
    book = cm.encodings[name].codebook
    original = book.astype("<f4").tobytes()
    blob = bytes(encode_sqz(cm, registry=default_registry()))
    assert blob.count(original) == 1
    poisoned = blob.replace(original, original[:-4] + b"\x00\x00\xc0\x7f")  # last entry -> NaN
    path = folder / "nan_codebook.sqz"
    path.write_bytes(_recompute_checksum(poisoned))  # as an attacker would: the CRC matches again
    assert_refused(run_hostile(capsys, "inspect", path), "NaN or infinite", "codebook")


def _recompute_checksum(blob: bytes) -> bytes:
    from safetensors.torch import load

    from squeezestudio.core.compression.codec.sqz_format import _checksum

    tensors = load(blob)

    def edit(meta):
        meta["checksum"] = _checksum(tensors)
    return hb.edit_sqz_header(blob, edit)
