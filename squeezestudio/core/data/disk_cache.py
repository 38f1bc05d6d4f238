"""Where the uint8 cache files live, how they are named, and what happens when the folder fails.

The folder is ``$SQUEEZESTUDIO_CACHE_DIR``, else ``$XDG_CACHE_HOME/squeezestudio/data``,
else ``~/.cache/squeezestudio/data`` (or the ``cache_dir`` given to
``load_dataset``). A file is named by a digest of everything its pixels
depend on: the source's resolved path, every file's path, size and
modification time, the class names asked for and the preprocessing spec;
an edited folder or another input size therefore never reads a stale file.

Nothing here may cost the user their evaluation: a folder that cannot be
written falls back to a temporary folder for this process (removed at exit),
and a damaged file is reported and rebuilt; each such event leaves a notice
(one plain sentence) for the CLI or the GUI to show.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.pixel_file import DamagedCacheFile, PixelFileInfo, PixelFileWriter, read_pixel_file

CACHE_DIR_ENV = "SQUEEZESTUDIO_CACHE_DIR"
SUFFIX = ".pixels"
MAX_CACHE_BYTES = 32 * 2**30
"""A folder's cache files beyond this total are removed, least recently used first (an ImageNet-size
validation set at 224x224 takes 7.5 GB)."""
STALE_TEMPORARY_S = 24 * 3600  # a build's temporary file this old was left by a process that died

_temp_lock = threading.Lock()
_temp_dir: Optional[Path] = None


def default_cache_dir() -> Path:
    """The user's cache folder for preprocessed images (see the module docstring)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "squeezestudio" / "data"


def cache_key(source: Path, spec: PreprocessSpec, class_names: Optional[tuple[str, ...]],
              fingerprint: tuple[tuple[str, int, int], ...]) -> str:
    """A hex digest of everything the cached pixels and labels depend on."""
    text = json.dumps([SUFFIX, str(source), dataclasses.asdict(spec), class_names, fingerprint],
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def _process_temp_dir() -> Path:
    """One temporary cache folder per process, created on first use and removed at exit."""
    global _temp_dir
    with _temp_lock:
        if _temp_dir is None:
            _temp_dir = Path(tempfile.mkdtemp(prefix="squeezestudio-cache-"))
            atexit.register(shutil.rmtree, _temp_dir, ignore_errors=True)
        return _temp_dir


class PixelCache:
    """The cache files of one folder, with the fallbacks; ``notices`` collects what the user should hear."""

    def __init__(self, folder: Optional[Path] = None, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_cache_dir()
        self.max_bytes = int(max_bytes)
        self.notices: list[str] = []

    def _folders(self) -> list[Path]:
        temp = _temp_dir
        return [self.folder] + ([temp] if temp is not None and temp != self.folder else [])

    def find(self, key: str, shape: tuple[int, int, int], planned: int) -> Optional[PixelFileInfo]:
        """A valid file for ``key`` in the folder (or this process's temporary one); damaged ones are removed."""
        for folder in self._folders():
            path = folder / f"{key}{SUFFIX}"
            try:
                info = read_pixel_file(path, key, shape, planned)
            except DamagedCacheFile as exc:
                self.notices.append(f"the cached images {path} were not used because {exc}; they were "
                                    "rebuilt from the image files")
                _unlink(path)
                continue
            if info is not None:
                _touch(path)
                return info
        return None

    def writer(self, key: str, shape: tuple[int, int, int]) -> Optional[PixelFileWriter]:
        """A writer in the folder, else in a temporary folder (with a notice), else None (keep in memory)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return PixelFileWriter(self.folder / f"{key}{SUFFIX}", shape)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        try:
            temp = _process_temp_dir()
            writer = PixelFileWriter(temp / f"{key}{SUFFIX}", shape)
        except OSError:
            self.notices.append(f"the cache folder {self.folder} cannot be written ({reason}) and neither can "
                                "a temporary folder, so the images are held in memory")
            return None
        self.notices.append(f"the cache folder {self.folder} cannot be written ({reason}), so the images are "
                            f"cached in {temp} until the program ends; set {CACHE_DIR_ENV} to a writable folder")
        return writer

    def write_failed(self, exc: OSError) -> None:
        """Record that a build stopped on a write error (e.g. a full disk); the caller holds the set in memory."""
        self.notices.append(f"the cache folder {self.folder} ran into an error while writing "
                            f"({exc.strerror or type(exc).__name__}), so the images are held in memory")


    def prune(self, keep: Path) -> list[Path]:
        """Remove least recently used files of ``keep``'s folder until it is within ``max_bytes`` (never ``keep``).

        Old data sets (an edited folder leaves its previous file behind)
        would otherwise fill the disk; temporary files of builds that died
        are removed too. Returns what was removed.
        """
        now = time.time()
        entries = []
        removed = []
        try:
            listing = list(keep.parent.iterdir())
        except OSError:
            return []
        for p in listing:
            try:
                st = p.stat()
            except OSError:
                continue
            if p.name.startswith(".") and p.name.endswith(".tmp") and now - st.st_mtime > STALE_TEMPORARY_S:
                removed.append(p)
            elif p.suffix == SUFFIX and p != keep:
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries) + _size(keep)
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            removed.append(p)
            total -= size
        return [p for p in removed if _unlink(p)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unlink(path: Path) -> bool:
    """Remove a file; False if it could not be (a read-only folder keeps its files)."""
    try:
        path.unlink()
        return True
    except OSError:
        return False


def _touch(path: Path) -> None:
    """Mark a file as used now (for whoever clears old cache files by age)."""
    try:
        os.utime(path)
    except OSError:
        pass

