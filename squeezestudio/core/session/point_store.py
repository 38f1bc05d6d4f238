"""Where every measured point keeps its model: one ``.sqz`` file per experiment.

A point on the trade-off plot is only useful if the model behind it can be
looked at and exported later, so each experiment's compressed model is written
as the exact ``.sqz`` bytes that were measured (``<id>.sqz``) into a folder:
beside the project file for a saved project, in the autosave folder otherwise.
The folder is bounded (``limit_bytes``): when it grows past the limit the
oldest points that are not pinned lose their file and become *recipe-only*
(their recipe is still in the project and rebuilds the same model on demand).
A few decoded models are kept in memory (least recently used first out), so
clicking back and forth between points is instant without holding every model.

The API is deliberately small so any producer of points (the GUI, a Ray sweep)
can use it: ``add(experiment_or_id, sqz_bytes)``, ``get(id)``, ``has(id)``.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Optional

from squeezestudio.core.atomic_write import PathLike, atomic_write_bytes
from squeezestudio.core.errors import SqueezeStudioError

DEFAULT_LIMIT_BYTES = 512 * 1024 * 1024
"""Disk budget of one store: beyond it the oldest unpinned points become recipe-only."""

MEMORY_MODELS = 3
"""How many decoded models a store keeps in memory."""

SUFFIX = ".sqz"


class PointEvicted(SqueezeStudioError):
    """The point's file was evicted (or never written): rebuild it from its recipe."""


def _point_id(item: Any) -> str:
    """An experiment's id, or the id itself."""
    value = getattr(item, "id", item)
    if not isinstance(value, str) or not value or any(c in value for c in "/\\.") or value.startswith("~"):
        raise SqueezeStudioError(f"{value!r} is not a usable point id")
    return value


class PointStore:
    """A folder of ``<id>.sqz`` files with a disk bound and a small in-memory cache.

    ``folder=None`` defers choosing a folder: nothing is written until
    :meth:`set_folder` (so a session that never measures a point creates no
    folder). The store is safe to read from a worker thread while the GUI
    thread adds points (one lock around its bookkeeping).
    """

    def __init__(self, folder: Optional[PathLike] = None, *, limit_bytes: int = DEFAULT_LIMIT_BYTES,
                 memory_models: int = MEMORY_MODELS) -> None:
        self._folder: Optional[Path] = None if folder is None else Path(folder)
        self.limit_bytes = int(limit_bytes)
        self.memory_models = max(1, int(memory_models))
        self._order: list[str] = []          # oldest first
        self._pinned: set[str] = set()
        self._memory: "OrderedDict[str, Any]" = OrderedDict()
        self._lock = threading.RLock()
        self.evicted: list[str] = []         # ids whose file was evicted, oldest first
        if self._folder is not None and self._folder.is_dir():
            self._adopt_existing()

    # -- where ---------------------------------------------------------
    @property
    def folder(self) -> Optional[Path]:
        return self._folder

    def set_folder(self, folder: PathLike, *, move: bool = True) -> None:
        """Use ``folder`` from now on; with ``move`` the stored files are copied there first."""
        target = Path(folder)
        with self._lock:
            if self._folder is not None and target.resolve() == self._folder.resolve():
                return
            target.mkdir(parents=True, exist_ok=True)
            if move and self._folder is not None:
                for pid in self._order:
                    source = self._folder / f"{pid}{SUFFIX}"
                    if source.is_file():
                        shutil.copyfile(source, target / f"{pid}{SUFFIX}")
            self._folder = target
            if not move:
                self._order, self._pinned, self.evicted = [], set(), []
                self._memory.clear()
                self._adopt_existing()

    def _adopt_existing(self) -> None:
        assert self._folder is not None
        files = sorted(self._folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
        self._order = [p.stem for p in files]

    def path(self, point: Any) -> Optional[Path]:
        """The point's file, or None when it has none (recipe-only or never stored)."""
        pid = _point_id(point)
        if self._folder is None:
            return None
        p = self._folder / f"{pid}{SUFFIX}"
        return p if p.is_file() else None

    # -- writing ---------------------------------------------------------
    def add(self, point: Any, sqz_bytes: bytes, compressed: Any = None) -> Path:
        """Store ``sqz_bytes`` as the point's file; ``compressed`` (its decoded model) goes to memory.

        Evicts the oldest unpinned points (not this one) when the store is over its limit.
        """
        pid = _point_id(point)
        with self._lock:
            if self._folder is None:
                raise SqueezeStudioError("the point store has no folder yet; save the project or set one")
            self._folder.mkdir(parents=True, exist_ok=True)
            target = self._folder / f"{pid}{SUFFIX}"
            atomic_write_bytes(target, bytes(sqz_bytes))
            if pid in self._order:
                self._order.remove(pid)
            self._order.append(pid)
            if pid in self.evicted:
                self.evicted.remove(pid)
            if compressed is not None:
                self._remember(pid, compressed)
            self.evict(protect=(pid,))
            return target

    def pin(self, point: Any, pinned: bool = True) -> None:
        """A pinned point is never evicted (e.g. the one the user exported)."""
        pid = _point_id(point)
        with self._lock:
            (self._pinned.add if pinned else self._pinned.discard)(pid)

    def is_pinned(self, point: Any) -> bool:
        return _point_id(point) in self._pinned

    def disk_bytes(self) -> int:
        """Bytes the store's files use on disk now."""
        with self._lock:
            return sum(p.stat().st_size for p in (self.path(i) for i in self._order) if p is not None)

    def evict(self, protect: Iterable[str] = ()) -> list[str]:
        """Delete the oldest unpinned files until the store fits its limit; returns their ids."""
        keep = set(protect) | self._pinned
        gone: list[str] = []
        with self._lock:
            sizes = {pid: p.stat().st_size for pid in self._order if (p := self.path(pid)) is not None}
            total = sum(sizes.values())
            for pid in list(self._order):
                if total <= self.limit_bytes:
                    break
                if pid in keep or pid not in sizes:
                    continue
                (self._folder / f"{pid}{SUFFIX}").unlink(missing_ok=True)  # type: ignore[operator]
                total -= sizes[pid]
                self._order.remove(pid)
                self._memory.pop(pid, None)
                self.evicted.append(pid)
                gone.append(pid)
        return gone

    def forget(self, point: Any) -> None:
        """Drop a point's file and memory entry (its experiment was removed)."""
        pid = _point_id(point)
        with self._lock:
            p = self.path(pid)
            if p is not None:
                p.unlink(missing_ok=True)
            if pid in self._order:
                self._order.remove(pid)
            self._memory.pop(pid, None)

    # -- reading ---------------------------------------------------------
    def has(self, point: Any) -> bool:
        """True when the point's model can be read back without recomputing it."""
        pid = _point_id(point)
        with self._lock:
            return pid in self._memory or self.path(pid) is not None

    def ids(self) -> list[str]:
        """Ids of the points with a file, oldest first."""
        with self._lock:
            return [pid for pid in self._order if self.path(pid) is not None]

    def read_bytes(self, point: Any) -> bytes:
        """The point's exact .sqz bytes (what an export writes)."""
        p = self.path(point)
        if p is None:
            raise PointEvicted(f"point {_point_id(point)} has no stored file; it is rebuilt from its recipe")
        return p.read_bytes()

    def get(self, point: Any, *, registry: Any) -> Any:
        """The point's decoded :class:`CompressedModel` (memory first, then its file, decoded with ``registry``)."""
        from squeezestudio.core.compression.codec import decode_sqz

        pid = _point_id(point)
        with self._lock:
            if pid in self._memory:
                self._memory.move_to_end(pid)
                return self._memory[pid]
        cm = decode_sqz(self.read_bytes(pid), registry=registry)
        with self._lock:
            self._remember(pid, cm)
        return cm

    def cached(self, point: Any) -> Any:
        """The decoded model if it is in memory now, else None (never reads a file)."""
        with self._lock:
            return self._memory.get(_point_id(point))

    def remember(self, point: Any, compressed: Any) -> None:
        """Keep a decoded model in memory (e.g. one rebuilt from its recipe)."""
        with self._lock:
            self._remember(_point_id(point), compressed)

    def _remember(self, pid: str, compressed: Any) -> None:
        self._memory[pid] = compressed
        self._memory.move_to_end(pid)
        while len(self._memory) > self.memory_models:
            self._memory.popitem(last=False)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
