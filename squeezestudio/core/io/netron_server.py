"""Serve one model file with the netron viewer, safely, from a private copy.

netron serves every file in the model's folder under ``/data/``; pointing it
at a user's folder would publish that whole folder on a local port. So the
model is first copied into a fresh temporary folder that holds nothing else,
and that folder is removed when the server stops.

netron's web viewer also refuses to work 180 days after its build date
("Please update to the newest version"). :func:`expiry_date` and
:func:`is_expired` let the GUI tell the user why the graph is missing and offer
another way to open the file instead of showing a dead page.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Optional, Union

from squeezestudio.core.atomic_write import atomic_write_with
from squeezestudio.core.errors import ModelLoadError, SqueezeStudioError

PathLike = Union[str, "os.PathLike[str]"]

VIEWER_LIFETIME_DAYS = 180
"""netron's viewer stops working this many days after its build date."""

PINNED_VERSION = "9.3.3"
PINNED_BUILD_DATE = _dt.date(2026, 10, 23)
"""Build date of the pinned netron (its viewer expires 2027-04-21), used when the installed one does not say.

Keep both in step with the netron that pyproject.toml installs: a test checks them.
"""

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 2.0


class ViewerUnavailableError(SqueezeStudioError):
    """The netron viewer is not installed or could not start."""


def netron_version() -> Optional[str]:
    """The installed netron's version, or None when netron is not installed."""
    try:
        import netron
    except ImportError:
        return None
    return str(getattr(netron, "__version__", "")) or None


def installed_build_date() -> Optional[_dt.date]:
    """The installed viewer's build date, read from its index.html (None when it cannot be read)."""
    try:
        import netron
    except ImportError:
        return None
    index = Path(netron.__file__).parent / "index.html"
    with contextlib.suppress(OSError):
        found = re.search(r'<meta name="date" content="(\d{4})-(\d{2})-(\d{2})',
                          index.read_text(encoding="utf-8", errors="replace"))
        if found:
            return _dt.date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    return None


def netron_build_date() -> _dt.date:
    """The installed viewer's build date, else the pinned one's (the expiry is counted from it)."""
    return installed_build_date() or PINNED_BUILD_DATE


def expiry_date() -> _dt.date:
    """The first day on which netron's viewer refuses to show models."""
    return netron_build_date() + _dt.timedelta(days=VIEWER_LIFETIME_DAYS)


def is_expired(today: Optional[_dt.date] = None) -> bool:
    """True when the viewer has passed its lifetime (``today`` defaults to the real date)."""
    return (today or _dt.date.today()) >= expiry_date()


class NetronServer:
    """One running netron instance showing a private copy of one model file.

    ``start`` returns the URL; ``stop`` shuts the server and deletes the copy.
    If the object is forgotten without ``stop``, the copy is still removed when
    it is garbage collected or the interpreter exits.
    """

    def __init__(self) -> None:
        self._address: Optional[tuple[str, int]] = None
        self._folder: Optional[Path] = None
        self._finalizer: Optional[weakref.finalize] = None

    @property
    def address(self) -> Optional[tuple[str, int]]:
        """``(host, port)`` while running, else None."""
        return self._address

    @property
    def url(self) -> Optional[str]:
        """The viewer's URL while running, else None."""
        return None if self._address is None else f"http://{self._address[0]}:{self._address[1]}/"

    @property
    def served_file(self) -> Optional[Path]:
        """The private copy being served (inside a temporary folder), else None."""
        if self._folder is None:
            return None
        files = list(self._folder.iterdir())
        return files[0] if files else None

    @property
    def running(self) -> bool:
        return self._address is not None

    def start(self, model_path: PathLike) -> str:
        """Serve a private copy of ``model_path`` on a free loopback port; returns the URL."""
        try:
            import netron
        except ImportError as exc:
            raise ViewerUnavailableError(
                "the netron viewer is not installed; install the 'netron' package to see model graphs") from exc
        source = Path(model_path)
        if not source.is_file():
            raise ModelLoadError(f"cannot show {source}: the file does not exist")
        self.stop()
        folder = Path(tempfile.mkdtemp(prefix="squeezestudio-netron-"))
        self._finalizer = weakref.finalize(self, _stop_and_remove, None, folder)
        copy = folder / source.name
        try:
            atomic_write_with(copy, lambda tmp: shutil.copyfile(source, tmp))
            address = _quiet_start(netron, str(copy))
        except (OSError, ValueError) as exc:
            self._finalizer()
            raise ViewerUnavailableError(f"the netron viewer could not start: {exc}") from exc
        self._folder, self._address = folder, (str(address[0]), int(address[1]))
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _stop_and_remove, self._address, folder)
        return self.url or ""

    def stop(self) -> None:
        """Stop serving and delete the private copy (safe to call twice)."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._address = None
        self._folder = None

    def __enter__(self) -> "NetronServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _quiet_start(netron_module: object, path: str) -> tuple[str, int]:
    """``netron.start`` without letting it reconfigure the application's root logger.

    netron calls ``logging.basicConfig`` when the root logger has no handler,
    which would make every library's INFO messages appear on the console.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return netron_module.start(path, address=(LOOPBACK, 0), browse=False)  # type: ignore[attr-defined]
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _stop_and_remove(address: Optional[tuple[str, int]], folder: Path) -> None:
    """Stop the server at ``address`` (if any) and delete ``folder``."""
    if address is not None:
        with contextlib.suppress(Exception):
            import netron

            netron.stop(address)
            # netron closes its socket while its thread may still be polling it; the
            # port is only really free once that thread has finished (<= 0.25 s).
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while netron.status(address) and time.monotonic() < deadline:
                time.sleep(0.02)
    shutil.rmtree(folder, ignore_errors=True)
