"""Write files so that a crash or kill mid-write never leaves a half-written file.

Data goes to a temporary file in the destination's folder (same file system),
is flushed and fsynced, then renamed over the destination in one step. If
anything fails, the temporary file is removed and any previous file is intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from squeezestudio.core.errors import ExportError

PathLike = Union[str, "os.PathLike[str]"]


def _default_mode() -> int:
    """The permissions an ordinary new file gets (mkstemp's 0600 would hide exports from others)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file; on normal exit it atomically becomes ``path``."""
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {dest}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, dest)
        tmp = ""
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> int:
    """Atomically write ``data`` to ``path``; returns the number of bytes written."""
    with atomic_open(path) as fh:
        fh.write(data)
    return len(data)


def atomic_write_with(path: PathLike, writer: Callable[[Path], None]) -> int:
    """Atomically produce ``path`` with a library writer that wants a file name.

    ``writer(tmp_path)`` writes a complete file at ``tmp_path`` (e.g.
    ``torch.save`` or ``onnx.save``); it is then fsynced and renamed into place.
    Returns the final file's size in bytes.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {dest}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        writer(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, dest)
        tmp = ""
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return dest.stat().st_size
