"""What the app remembers between runs (QSettings): window layout, recent files, last data, the subset size,
the trade-off plot's x/y/colour."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings

from squeezestudio.core.session.interactive_subset import DEFAULT_INTERACTIVE_LIMIT
from squeezestudio.core.session.plot_axes import DEFAULT_X, DEFAULT_Y, PLOT_METRICS

MAX_RECENT = 10


def make_settings(path: Optional[str] = None) -> QSettings:
    """The user's settings, or an INI file at ``path`` (tests, portable installs)."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings("SqueezeStudio", "SqueezeStudio")


class AppSettings:
    """Typed access to the few values the window stores."""

    def __init__(self, settings: Optional[QSettings] = None) -> None:
        self.qsettings = settings if settings is not None else make_settings()

    def recent_files(self) -> list[str]:
        value = self.qsettings.value("recent_files", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> list[str]:
        """Put ``path`` first (once) and keep the list short."""
        path = str(Path(path))
        files = [path] + [p for p in self.recent_files() if p != path]
        files = files[:MAX_RECENT]
        self.qsettings.setValue("recent_files", files)
        return files

    def clear_recent(self) -> None:
        self.qsettings.setValue("recent_files", [])

    def last_data(self) -> Optional[str]:
        value = self.qsettings.value("last_data", None)
        return str(value) if value else None

    def set_last_data(self, source: str) -> None:
        self.qsettings.setValue("last_data", source)

    def interactive_limit(self) -> int:
        """Images interactive points are measured on (0: all of them); the core's default until set."""
        value = self.qsettings.value("interactive_limit", DEFAULT_INTERACTIVE_LIMIT)
        try:
            limit = int(value)
        except (TypeError, ValueError):
            return DEFAULT_INTERACTIVE_LIMIT
        return limit if limit >= 0 else DEFAULT_INTERACTIVE_LIMIT

    def set_interactive_limit(self, limit: int) -> None:
        self.qsettings.setValue("interactive_limit", int(limit))

    def plot_axes(self) -> tuple[str, str, Optional[str]]:
        """The trade-off plot's (x, y, colour) as last chosen; colour None: no colour scale.

        Each falls back to its default on its own when unset or no longer a plot
        metric (a renamed metric, a settings file from another version).
        """
        return (self._plot_metric("plot_x") or DEFAULT_X, self._plot_metric("plot_y") or DEFAULT_Y,
                self._plot_metric("plot_colour"))

    def _plot_metric(self, key: str) -> Optional[str]:
        value = self.qsettings.value(key, None)
        return value if isinstance(value, str) and value in PLOT_METRICS else None

    def set_plot_axes(self, x: str, y: str, colour: Optional[str]) -> None:
        self.qsettings.setValue("plot_x", x)
        self.qsettings.setValue("plot_y", y)
        self.qsettings.setValue("plot_colour", colour or "")

    def last_clean_exit(self) -> Optional[float]:
        """When the window last closed normally (seconds since the epoch), or None."""
        value = self.qsettings.value("clean_exit_at", None)
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def set_clean_exit(self, timestamp: float) -> None:
        self.qsettings.setValue("clean_exit_at", float(timestamp))

    def geometry(self) -> tuple[Optional[QByteArray], Optional[QByteArray]]:
        """(window geometry, dock/toolbar state) as saved, or None."""
        return self.qsettings.value("geometry", None), self.qsettings.value("window_state", None)

    def set_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("geometry", geometry)
        self.qsettings.setValue("window_state", state)

    def sync(self) -> None:
        self.qsettings.sync()
