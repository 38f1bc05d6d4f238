"""A memory-bounded cache of preprocessed data sets.

Every point on the size/accuracy plot is an evaluation on the same images;
decoding and resizing thousands of JPEGs each time would dominate. Data sets
are cached under a key made of the source (resolved path, every file's size
and modification time) and the preprocessing, so an edited folder or a
different input size is never served stale, and the least recently used sets
are dropped once the byte budget is exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Hashable, Iterable, Optional

import torch

from squeezestudio.core.data.dataset import ImageDataset

DEFAULT_CACHE_BYTES = 512 * 1024 * 1024


def dataset_nbytes(data: ImageDataset) -> int:
    """Bytes held in memory by the data set's tensors (what the cache budget counts; a disk-backed view holds none)."""
    images = data.images
    total = images.element_size() * images.nelement() if isinstance(images, torch.Tensor) else 0
    if data.labels is not None:
        total += data.labels.element_size() * data.labels.nelement()
    return int(total)


def files_fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """``(path, size, mtime_ns)`` for each file: changes whenever a file is edited, added or removed."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), int(st.st_size), int(st.st_mtime_ns)))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


def _shallow_copy(data: ImageDataset) -> ImageDataset:
    """A new data set object sharing the (never mutated) tensors, so callers may edit its lists."""
    return replace(data, class_names=list(data.class_names),
                   paths=None if data.paths is None else list(data.paths), skipped=list(data.skipped),
                   notices=list(data.notices))


class DatasetCache:
    """Thread-safe LRU of :class:`ImageDataset` objects bounded by total tensor bytes."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: "OrderedDict[Hashable, tuple[ImageDataset, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Optional[ImageDataset]:
        """The cached data set for ``key`` (a fresh shallow copy), or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return _shallow_copy(entry[0])

    def put(self, key: Hashable, data: ImageDataset) -> bool:
        """Store ``data``; returns False (and stores nothing) if it alone exceeds the budget."""
        size = dataset_nbytes(data)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return False
            self._items[key] = (_shallow_copy(data), size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
            return True

    def clear(self) -> None:
        """Forget every cached data set (e.g. to free memory)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items


_shared: Optional[DatasetCache] = None
_shared_lock = threading.Lock()


def shared_cache() -> DatasetCache:
    """The process-wide cache ``load_dataset`` uses unless given another."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DatasetCache()
        return _shared
