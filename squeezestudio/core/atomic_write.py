"""Write files so that a crash or kill mid-write never leaves a half-written file.

Data goes to a temporary file in the destination's folder (same file system),
is flushed and fsynced, then renamed over the destination in one step. If
anything fails, the temporary file is removed and any previous file is intact.

Three more guarantees, because an output path is user input too:

- :func:`check_output_path` says before any work whether a path can be
  written: its folder exists and is writable, and the path is a regular file
  or nothing. A device, a FIFO, a folder or a symbolic link is never replaced
  (a rename over ``/dev/null`` as root would delete the device node).
- Every ``OSError`` (permission, disk full, file too large, name too long)
  becomes one :class:`ExportError` sentence naming the path.
- A ``kill -9`` mid-write cannot remove its temporary file, so temporary
  names carry the writer's process id, and every write first removes the
  temporary files in its folder whose writer is no longer running.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from squeezestudio.core.errors import ExportError, OutputPathError

PathLike = Union[str, "os.PathLike[str]"]

TEMP_SUFFIX = ".squeezestudio-partial"
"""Ends every temporary file name: ``.<name>.<pid>.<random>.squeezestudio-partial``."""
_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def _default_mode() -> int:
    """The permissions an ordinary new file gets (mkstemp's 0600 would hide exports from others)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _folder_of(dest: Path) -> Path:
    return dest.parent if str(dest.parent) else Path(".")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_path(path: PathLike) -> Path:
    """The path, if a file can be written there; otherwise an :class:`OutputPathError` sentence.

    Call it before long work, so a bad ``-o`` is reported in a second, not
    after the compression has run.
    """
    dest = Path(path)
    if "\0" in str(path):
        raise OutputPathError("the output path contains a NUL byte")
    folder = _folder_of(dest)
    try:
        if not folder.is_dir():
            raise OutputPathError(f"cannot write {dest}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputPathError(f"cannot write {dest}: the folder {folder} is not writable")
        info = os.lstat(dest)
    except FileNotFoundError:
        return dest
    except OSError as exc:
        raise OutputPathError(f"cannot write {dest}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(f"cannot write {dest}: it is {_kind(info.st_mode)}, and SqueezeStudio only "
                              f"replaces regular files; choose another output path")
    if not os.access(dest, os.W_OK):
        raise OutputPathError(f"cannot write {dest}: the existing file is read-only")
    return dest


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(folder: PathLike) -> list[str]:
    """Delete temporary files left in ``folder`` by writers that were killed; returns their names."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMP_RE.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            if _pid_running(int(match["pid"])):  # this process's own writes included
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


@contextlib.contextmanager
def _temporary_beside(dest: Path) -> Iterator[tuple[int, str]]:
    """A new temporary file in ``dest``'s folder (fd, path), removed unless renamed."""
    folder = _folder_of(dest)
    check_output_path(dest)
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _commit(tmp: str, dest: Path) -> None:
    """Rename ``tmp`` over ``dest`` (checked again: only a regular file or nothing is replaced)."""
    check_output_path(dest)
    os.chmod(tmp, _default_mode())
    os.replace(tmp, dest)
    with contextlib.suppress(OSError):
        dir_fd = os.open(_folder_of(dest), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _sentence(dest: Path, exc: OSError) -> ExportError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ExportError(f"cannot write {dest}: {reason[0].lower() + reason[1:] if reason else reason}; "
                       f"any previous file there is untouched")


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file; on normal exit it atomically becomes ``path``."""
    dest = Path(path)
    try:
        with _temporary_beside(dest) as (fd, tmp):
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            _commit(tmp, dest)
    except OSError as exc:
        raise _sentence(dest, exc) from None


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
    try:
        with _temporary_beside(dest) as (fd, tmp):
            os.close(fd)
            try:
                writer(Path(tmp))
            except RuntimeError as exc:  # torch's and onnx's writers report a failed write this way
                raise OSError(str(exc).splitlines()[0] if str(exc) else "the write failed") from exc
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            _commit(tmp, dest)
        return dest.stat().st_size
    except OSError as exc:
        raise _sentence(dest, exc) from None
