"""Recognise a model file by its content, not its extension.

Users rename files freely (``.pth``, ``.bin``, ``.ckpt``, no extension), and a
TorchScript archive looks like an ordinary torch checkpoint from its name, so
the loader decides what a file is from its first bytes and, for zip archives,
from the archive's entry names. Nothing here unpickles or imports anything.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Optional, Union

from squeezestudio.core.bounded_parse import load_json
from squeezestudio.core.errors import ModelLoadError

TORCH_ZIP = "torch_zip"
TORCHSCRIPT = "torchscript"
TORCH_LEGACY = "torch_legacy"
SAFETENSORS = "safetensors"
SQZ = "sqz"
ONNX = "onnx"

SQZ_FORMAT_TAG = "squeezestudio-sqz"
"""The ``format`` value that marks a safetensors file as a .sqz (see ``_is_sqz``)."""

MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
"""safetensors' own limit on the JSON header; a larger claimed size means a damaged file."""

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
_ONNX_FIRST_TAG = 0x08  # ModelProto field 1 (ir_version), varint: what every exporter writes first.


def split_python_target(target: Union[str, Path]) -> Optional[tuple[Path, str]]:
    """``"model.py:build"`` -> ``(Path("model.py"), "build")``; None for anything else.

    A bare ``.py`` path is an error (we need to know which function builds the model).
    """
    text = str(target)
    if text.endswith(".py"):
        raise ModelLoadError(f"{text} is a Python file: name the function that builds the model, "
                             f"e.g. {text}:build_model")
    if ":" not in text:
        return None
    file_part, _, factory = text.rpartition(":")
    if not file_part.endswith(".py"):
        return None
    if not factory.isidentifier():
        raise ModelLoadError(f"{factory!r} in {text} is not a Python function name")
    return Path(file_part), factory


def check_readable_file(path: Path) -> int:
    """The size of ``path``; a plain-sentence error if it is missing, a folder, or empty."""
    if not path.exists():
        raise ModelLoadError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a model file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes); it was probably not saved or "
                             f"downloaded completely")
    return size


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor table plus ``__metadata__``)."""
    size = check_readable_file(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelLoadError(f"{path} is too short to be a safetensors file")
        length = int.from_bytes(head, "little")
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise ModelLoadError(f"{path} is truncated or corrupt: its safetensors header claims "
                                 f"{length} bytes but the file has only {size - 8} after it")
        raw = fh.read(length)
    header = load_json(raw, f"the safetensors header of {path.name}", _DamagedHeader)
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path} has a damaged safetensors header (not a JSON object)")
    return header


class _DamagedHeader(ModelLoadError):
    """A safetensors header that is not bounded, valid JSON (reported as a damaged header)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}: a damaged safetensors header")


def safetensors_metadata(header: dict[str, Any]) -> dict[str, str]:
    """The free-form string metadata of a safetensors header (empty when absent)."""
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _is_sqz(meta: dict[str, str]) -> bool:
    """A .sqz file tags itself either in the plain metadata or in its ``squeezestudio`` JSON."""
    if meta.get("format") == SQZ_FORMAT_TAG:
        return True
    try:
        inner = load_json(meta.get("squeezestudio", "null"), "the SqueezeStudio metadata", ModelLoadError)
    except ModelLoadError:
        return False
    return isinstance(inner, dict) and inner.get("format") == SQZ_FORMAT_TAG


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:  # a damaged entry name is damage too
        raise ModelLoadError(f"{path} is truncated or corrupt: it starts like a PyTorch "
                             f"checkpoint (zip archive) but cannot be read as one") from exc
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n.endswith("data.pkl") for n in names):
        return TORCH_ZIP
    raise ModelLoadError(f"{path} is a zip archive but not a PyTorch checkpoint "
                         f"(it has no data.pkl entry)")


def _looks_like_safetensors(head: bytes) -> bool:
    # An 8-byte little-endian header length (always < 4 GiB, so its top 4 bytes are zero)
    # then the JSON header's "{". Checked before pickles: a length such as 0x280 begins
    # with the same two bytes as a protocol-2 pickle.
    return len(head) >= 9 and head[8:9] == b"{" and head[4:8] == b"\0\0\0\0" \
        and int.from_bytes(head[:8], "little") >= 2


def detect_format(path: Path) -> str:
    """One of the format constants above, from the file's content.

    Raises :class:`ModelLoadError` for missing, empty, truncated or unknown files.
    """
    check_readable_file(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind(path)
    if _looks_like_safetensors(head):
        meta = safetensors_metadata(read_safetensors_header(path))
        return SQZ if _is_sqz(meta) else SAFETENSORS
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5:
        return TORCH_LEGACY
    if path.suffix.lower() == ".onnx" or head[0] == _ONNX_FIRST_TAG:
        return ONNX
    raise ModelLoadError(
        f"{path} is not a model format SqueezeStudio reads (PyTorch checkpoint, safetensors, "
        f"ONNX, TorchScript, .sqz, or a model.py:factory file)")
