"""A data set's images read from the uint8 cache file one batch at a time.

:class:`PixelImages` stands where :class:`~squeezestudio.core.data.dataset.ImageDataset`
holds its float tensor when that tensor would not fit the memory budget.
Indexing it the way evaluation, training and calibration index a tensor
(``images[start:stop]``, ``images[idx]``, ``images[0]``) maps just those
rows of the file, checks their CRC-32, converts them to float (pixel scale,
mean, std) and unmaps them again, so resident memory stays at about one
batch whatever the size of the set. A row that fails its check is decoded
again from its source image (and written back when the folder allows it).
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Optional, Sequence

import numpy as np
import torch

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.images import decode_size, load_image, normalise_tensor, prepare_pixels
from squeezestudio.core.data.pixel_file import DATA_OFFSET, PixelFileInfo
from squeezestudio.core.errors import DataError, ImageDecodeError

_CHUNK_ROWS = 64  # rows converted at once by to_tensor()


class PixelImages:
    """A read-only ``(N, C, H, W)`` float32 view of uint8 rows in a cache file.

    ``sources[r]`` is the image file of physical row ``r`` (used to repair a
    damaged row); ``rows`` maps this view's indices to physical rows (a
    subset shares the file). ``repaired`` counts rows rebuilt from their
    source because their bytes failed the check.
    """

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, info: PixelFileInfo, spec: PreprocessSpec, sources: Sequence[str], key: str,
                 rows: Optional[np.ndarray] = None) -> None:
        self.path = Path(info.path)
        self.spec = spec
        self.key = key
        self._info_shape = info.shape
        self._crcs = info.crcs
        self._sources = sources
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._file: Optional[BinaryIO] = None
        self.repaired = 0

    # -- the tensor-like surface used by evaluation, training and calibration --------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self._info_shape))

    def size(self, dim: Optional[int] = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self._crcs) if self._rows is None else len(self._rows)

    def numel(self) -> int:
        c, h, w = self._info_shape
        return len(self) * c * h * w

    nelement = numel

    def element_size(self) -> int:
        return 4

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, tuple):
            if not index:
                return self.to_tensor()
            first = self[index[0]]
            rest = index[1:] if isinstance(index[0], (int, np.integer)) else (slice(None), *index[1:])
            return first[rest]
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"index {int(index)} is out of range for {len(self)} images")
            return self._read(np.array([i], dtype=np.int64))[0]
        if isinstance(index, slice):
            return self._read(np.arange(*index.indices(len(self)), dtype=np.int64))
        idx = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"an index is out of range for {len(self)} images")
        return self._read(idx)

    def take(self, indices: Any) -> "PixelImages":
        """A view of the images at ``indices`` sharing the same file (subsets stay on disk)."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        rows = idx if self._rows is None else self._rows[idx]
        view = PixelImages.__new__(PixelImages)
        view.__dict__.update(self.__dict__)
        view._rows, view._file, view.repaired = rows, None, 0
        return view

    def to_tensor(self) -> torch.Tensor:
        """All images as one float tensor (only for sets that fit in memory)."""
        c, h, w = self._info_shape
        out = torch.empty((len(self), c, h, w), dtype=torch.float32)
        for start in range(0, len(self), _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, len(self))
            out[start:stop] = self._read(np.arange(start, stop, dtype=np.int64))
        return out

    @property
    def digest(self) -> str:
        """Identifies the content: the cache key (files and preprocessing) and the rows viewed."""
        rows = b"" if self._rows is None else self._rows.tobytes()
        return f"{self.key}:{hashlib.blake2b(rows, digest_size=8).hexdigest()}:{len(self)}"

    # -- reading ----------------------------------------------------------------------------------------
    def _handle(self) -> BinaryIO:
        """The open cache file (kept open, so a file replaced or deleted meanwhile stays readable)."""
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except OSError as exc:
                raise DataError(f"the cached images {self.path} cannot be read ({exc.strerror or exc}); "
                                "load the data again") from None
        return self._file

    def _read(self, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` of this view as normalised float32, each row's CRC checked."""
        rows = idx if self._rows is None else self._rows[idx]
        c, h, w = self._info_shape
        if rows.size == 0:
            return torch.empty((0, c, h, w), dtype=torch.float32)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        # Map just the span covering the rows, copy them out and unmap: nothing stays resident.
        span = np.memmap(self._handle(), dtype=np.uint8, mode="r", offset=DATA_OFFSET + lo * c * h * w,
                         shape=(hi - lo, c, h, w))
        pixels = np.array(span[rows - lo] if rows.size != hi - lo or np.any(np.diff(rows) != 1) else span)
        del span
        for j, r in enumerate(rows.tolist()):
            if zlib.crc32(pixels[j]) != int(self._crcs[r]):
                pixels[j] = self._repair(r)
        return normalise_tensor(torch.from_numpy(pixels), self.spec)

    def _repair(self, row: int) -> np.ndarray:
        """Decode physical ``row`` again from its image file and, if the folder allows, write it back."""
        source = self._sources[row]
        try:
            pixels = prepare_pixels(load_image(source, min_size=decode_size(self.spec)), self.spec)
        except (ImageDecodeError, OSError) as exc:
            raise DataError(f"the cached copy of {source} is damaged and the image cannot be read again "
                            f"({exc}); load the data again") from None
        self.repaired += 1
        if zlib.crc32(pixels) == int(self._crcs[row]):
            try:
                with open(self.path, "r+b") as f:
                    f.seek(DATA_OFFSET + row * pixels.size)
                    f.write(pixels.tobytes())
            except OSError:
                pass  # a read-only cache: the row is rebuilt on every read instead
        return pixels

    def close(self) -> None:
        """Close the cache file (it is opened again on the next read)."""
        handle, self._file = self.__dict__.get("_file"), None
        if handle is not None:
            handle.close()

    def __del__(self) -> None:
        # The file stays open between reads (a replaced cache file stays readable); a set that is
        # dropped closes it here rather than leaving it to the garbage collector (a ResourceWarning).
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to report during interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None  # an open file does not travel; it is reopened by path
        return state

    def __repr__(self) -> str:
        return f"PixelImages({tuple(self.shape)}, {self.path})"
