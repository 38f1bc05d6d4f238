"""Progress reporting and cancellation for long-running core functions.

Every long core function (evaluation, clustering, fine-tuning, sweeps) takes an
optional ``progress`` callback and an optional ``cancel`` token, so the same
function runs in a script, a test, a CLI progress bar and a GUI worker thread.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol


class ProgressCallback(Protocol):
    """Called with a fraction in [0, 1] and a short human-readable message."""

    def __call__(self, fraction: float, message: str = "") -> None: ...


class Cancelled(Exception):
    """Raised inside a core function when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe flag a caller sets to ask a running core function to stop.

    Core functions call :meth:`raise_if_cancelled` at safe points (between
    batches, between layers); the caller catches :class:`Cancelled`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: Optional[ProgressCallback], fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping the fraction to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def check(cancel: Optional[CancelToken]) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set; a no-op for ``None``."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def scaled(progress: Optional[ProgressCallback], start: float, stop: float) -> Optional[ProgressCallback]:
    """A callback mapping a sub-task's [0, 1] onto [start, stop] of the parent's."""
    if progress is None:
        return None

    def _inner(fraction: float, message: str = "") -> None:
        progress(start + (stop - start) * min(1.0, max(0.0, fraction)), message)

    return _inner


ProgressFn = Callable[[float, str], None]
