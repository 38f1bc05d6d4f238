"""A terminal progress bar that plugs into the core's progress callbacks.

It draws only when the work has run for more than a second (short commands
stay quiet) and only on a terminal; in a pipe or in CI it prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalProgress:
    """Callable ``(fraction, message)`` drawing ``label [#####     ] 52% message``."""

    def __init__(self, label: str, stream: TextIO | None = None, delay_s: float = 1.0, width: int = 30):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.width = width
        self._start = time.monotonic()
        self._drawn = False
        self._last = 0.0
        self._enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if not self._enabled or now - self._start < self.delay_s:
            return
        if now - self._last < 0.1 and fraction < 1.0:
            return
        self._last = now
        filled = int(round(self.width * fraction))
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:3.0f}% {message[:40]:<40}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line if a bar was drawn."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> "TerminalProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
