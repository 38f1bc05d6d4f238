"""The .sqz compressed checkpoint: bit packing, Huffman coding, sparse indices, size accounting.

``save_sqz``/``load_sqz`` write and read a :class:`CompressedModel`;
``encode_sqz``/``decode_sqz`` do the same in memory; ``size_report`` explains
every byte of ``encode_sqz``'s output stage by stage (dense, pruned,
quantized, entropy coded), so the size the application shows is the size of
the file it writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.codec.size_report import LayerSize, SizeReport, size_report
from squeezestudio.core.compression.codec.sqz_format import decode_container, encode_container
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.errors import CodecError
from squeezestudio.core.progress import CancelToken, ProgressCallback

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["LayerSize", "SizeReport", "decode_sqz", "encode_sqz", "load_sqz", "save_sqz", "size_report"]


def encode_sqz(cm: CompressedModel, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelToken] = None, *, registry: Optional[MethodRegistry] = None) -> bytes:
    """The bytes of ``cm``'s .sqz file (raises CodecError if the encodings do not match the model).

    ``registry`` is needed when ``cm`` holds custom (plugin) encodings.
    """
    return encode_container(cm, progress, cancel, registry=registry)[0]


def decode_sqz(data: bytes, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelToken] = None, *, registry: MethodRegistry) -> CompressedModel:
    """Rebuild a compressed model from .sqz bytes; any malformation raises CodecError.

    ``registry`` replays architecture modifications and decodes custom encodings.
    """
    return decode_container(data, None, progress, cancel, registry=registry)


def save_sqz(cm: CompressedModel, path: PathLike, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None, *, registry: Optional[MethodRegistry] = None) -> int:
    """Atomically write ``cm`` to ``path``; returns the bytes written (the file's size)."""
    return atomic_write_bytes(path, encode_sqz(cm, progress, cancel, registry=registry))


def load_sqz(path: PathLike, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None, *, registry: MethodRegistry) -> CompressedModel:
    """Read and fully validate a .sqz file; the handle's ``source_format`` is ``"sqz"``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CodecError(f"cannot read {p}: {exc.strerror or exc}") from exc
    return decode_container(data, p, progress, cancel, registry=registry)
