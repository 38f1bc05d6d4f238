"""The on-disk form of a preprocessed data set: uint8 pixels at the model's input size.

A float tensor of an ImageNet-size validation set needs ~30 GB; the same
images as uint8 at 224x224 are a quarter of that, on disk, read one batch at
a time (:class:`~squeezestudio.core.data.pixel_images.PixelImages`). A file is
written beside its final name and renamed when complete, so a reader never
sees a half-written one; and it is never trusted blindly: the header records
the shape, the sizes and a digest of itself and of the metadata, the file
size must match exactly, and every image row carries a CRC-32 checked on
each read (a torn page after a crash, or a flipped bit, is caught there).

Layout: a 4096-byte header (``HEADER`` then zeros), ``count`` rows of
``C*H*W`` bytes, then UTF-8 JSON metadata (the key, which planned files were
kept, which were skipped at decode and why, the row CRCs).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

MAGIC = b"SQZPIXv1"
VERSION = 1
HEADER = struct.Struct("<8sIIIIQQQ32s")  # magic, version, C, H, W, count, meta offset, meta length, digest
DATA_OFFSET = 4096
MAX_META_BYTES = 1 << 30


class DamagedCacheFile(Exception):
    """Internal: a cache file failed a check (the caller rebuilds it and tells the user)."""


@dataclass(frozen=True)
class PixelFileInfo:
    """What a validated cache file holds (the pixels stay on disk)."""

    path: Path
    shape: tuple[int, int, int]
    count: int
    kept: list[int]  # indices of the planned files that became rows, in row order
    skipped: list[tuple[str, str]]  # (path, reason) of planned files left out at decode
    crcs: np.ndarray  # uint32, one per row

    @property
    def row_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


def _digest(fields: bytes, meta: bytes) -> bytes:
    return hashlib.blake2b(fields + meta, digest_size=32).digest()


class PixelFileWriter:
    """Writes rows sequentially to a temporary file beside ``path``; :meth:`finish` renames it into place.

    Rows are written with plain file writes, not through a writable memory
    map, so the pages never count in this process's resident memory.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        self.path = Path(path)
        self.shape = shape
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        self._file = open(self._tmp, "xb")  # raises OSError for a read-only or missing folder
        self._crcs: list[int] = []
        try:
            self._file.write(b"\0" * DATA_OFFSET)
        except OSError:
            self.abort()
            raise

    def add(self, pixels: np.ndarray) -> None:
        """Append one ``(C, H, W)`` uint8 row."""
        if pixels.shape != self.shape or pixels.dtype != np.uint8:
            raise ValueError(f"a row of shape {pixels.shape} {pixels.dtype} does not fit a {self.shape} file")
        row = np.ascontiguousarray(pixels)
        self._crcs.append(zlib.crc32(row))
        self._file.write(row.data)

    def finish(self, key: str, kept: list[int], skipped: list[tuple[str, str]]) -> PixelFileInfo:
        """Write the metadata and header, then rename into place (replacing any older file)."""
        if len(kept) != len(self._crcs):
            raise ValueError("the kept list does not match the rows written")
        meta = json.dumps({"key": key, "kept": kept, "skipped": skipped, "crc32": self._crcs}).encode()
        count = len(self._crcs)
        c, h, w = self.shape
        meta_offset = DATA_OFFSET + count * c * h * w
        fields = HEADER.pack(MAGIC, VERSION, c, h, w, count, meta_offset, len(meta), b"\0" * 32)[:-32]
        try:
            self._file.write(meta)
            self._file.seek(0)
            self._file.write(fields + _digest(fields, meta))
            self._file.close()
            os.replace(self._tmp, self.path)
        except OSError:
            self.abort()
            raise
        return PixelFileInfo(self.path, self.shape, count, list(kept), list(skipped),
                             np.asarray(self._crcs, dtype=np.uint32))

    def abort(self) -> None:
        """Close and delete the temporary file (a cancelled or failed build leaves nothing behind)."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            self._tmp.unlink()
        except OSError:
            pass


def read_pixel_file(path: Path, key: str, shape: tuple[int, int, int], planned: int) -> Optional[PixelFileInfo]:
    """The validated contents of ``path``; None if it does not exist.

    Raises :class:`DamagedCacheFile` (with the reason) for a file that is
    truncated, padded, of another version or shape, whose header or metadata
    digest does not match, or that was written for another key; ``planned``
    (the number of files the plan lists) bounds the kept indices.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER.size)
            if len(head) < HEADER.size or size < DATA_OFFSET:
                raise DamagedCacheFile(f"it is truncated ({size:,d} bytes)")
            magic, version, c, h, w, count, meta_offset, meta_len, digest = HEADER.unpack(head)
            if magic != MAGIC:
                raise DamagedCacheFile("it does not start like a SqueezeStudio cache file")
            if version != VERSION:
                raise DamagedCacheFile(f"it is of format version {version}, not {VERSION}")
            if (c, h, w) != tuple(shape):
                raise DamagedCacheFile(f"it holds {c}x{h}x{w} images, not {shape[0]}x{shape[1]}x{shape[2]}")
            if meta_offset != DATA_OFFSET + count * c * h * w or meta_len > MAX_META_BYTES:
                raise DamagedCacheFile("its header is inconsistent")
            if size != meta_offset + meta_len:
                raise DamagedCacheFile(f"it is {size:,d} bytes where its header says {meta_offset + meta_len:,d}")
            f.seek(meta_offset)
            meta_bytes = f.read(meta_len)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DamagedCacheFile(f"it cannot be read ({exc.strerror or exc})") from None
    if _digest(head[:-32], meta_bytes) != digest:
        raise DamagedCacheFile("its header or metadata do not match their checksum")
    try:
        meta = json.loads(meta_bytes)
        kept = [int(i) for i in meta["kept"]]
        skipped = [(str(p), str(r)) for p, r in meta["skipped"]]
        crcs = np.asarray(meta["crc32"], dtype=np.uint32)
        stored_key = str(meta["key"])
    except (ValueError, KeyError, TypeError, OverflowError):
        raise DamagedCacheFile("its metadata cannot be parsed") from None
    if stored_key != key:
        raise DamagedCacheFile("it was written for other files or another preprocessing")
    if len(kept) != count or len(crcs) != count or any(
            b <= a for a, b in zip(kept, kept[1:])) or (kept and not 0 <= kept[0] <= kept[-1] < planned):
        raise DamagedCacheFile("its list of images does not match the data folder")
    return PixelFileInfo(Path(path), (c, h, w), count, kept, skipped, crcs)
