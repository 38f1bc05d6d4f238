"""Saving a .sqz file is atomic: a failure leaves the previous file and no temporary files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import squeezestudio.core.atomic_write as atomic_write
from squeezestudio.core.compression.codec import layer_codec, load_sqz, save_sqz
from squeezestudio.core.errors import CodecError, ExportError

from test_sqz_cases import make_cm, CODEC_REGISTRY  # sibling module




@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "model.sqz"
    size = save_sqz(make_cm("dense32"), path, registry=CODEC_REGISTRY)
    assert size == os.path.getsize(path)
    return path, path.read_bytes()


def test_failure_at_rename_keeps_old_file(saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = saved

    def broken_replace(src, dst):
        assert os.path.getsize(src) > 0  # the new data was written in full to a temporary file...
        raise OSError("disk unplugged")

    monkeypatch.setattr(atomic_write.os, "replace", broken_replace)
    with pytest.raises(ExportError, match="disk unplugged"):  # one sentence, not a raw OSError
        save_sqz(make_cm("codebook_shared", True), path, registry=CODEC_REGISTRY)
    assert path.read_bytes() == before  # ...but the old file is untouched
    assert os.listdir(path.parent) == [path.name]


def test_failure_while_writing_keeps_old_file(saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = saved
    real_open = atomic_write.os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            raise OSError("no space left on device")

    monkeypatch.setattr(atomic_write.os, "fdopen", lambda fd, mode: HalfWriter(real_open(fd, mode)))
    with pytest.raises(ExportError, match="no space"):
        save_sqz(make_cm("masked32"), path, registry=CODEC_REGISTRY)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_failure_while_encoding_writes_nothing(saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = saved

    def broken(*args, **kwargs):
        raise CodecError("simulated encoder failure")

    monkeypatch.setattr(layer_codec, "encode_layer", broken)
    monkeypatch.setattr("squeezestudio.core.compression.codec.sqz_format.encode_layer", broken)
    with pytest.raises(CodecError, match="simulated"):
        save_sqz(make_cm("dense32"), path, registry=CODEC_REGISTRY)
    assert path.read_bytes() == before and os.listdir(path.parent) == [path.name]


def test_overwrite_then_load(saved: tuple[Path, bytes]) -> None:
    path, _ = saved
    size = save_sqz(make_cm("binary", True), path, registry=CODEC_REGISTRY)
    assert size == os.path.getsize(path)
    assert load_sqz(path, registry=CODEC_REGISTRY).handle.name == "tiny-binary"


def test_missing_folder_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        save_sqz(make_cm("dense32"), tmp_path / "absent" / "model.sqz", registry=CODEC_REGISTRY)
