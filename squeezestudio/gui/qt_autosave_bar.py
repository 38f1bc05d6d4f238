"""A non-modal bar offering to restore work autosaved after the last clean exit.

A crash (or a killed process) leaves an autosave newer than the time the app
last closed normally; on the next start the window shows this bar above its
tabs instead of a modal question, so nothing blocks the user (or a test) who
does not care, and the bar says when the work was saved.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from squeezestudio.core.session.project_files import AutosaveInfo


def needs_offer(info: Optional[AutosaveInfo], last_clean_exit: Optional[float]) -> bool:
    """True when an autosave exists and is newer than the last clean exit (or none is known)."""
    if info is None:
        return False
    return last_clean_exit is None or info.timestamp > last_clean_exit


def describe_time(timestamp: float, now: Optional[float] = None) -> str:
    """``2026-05-01 14:03 (12 minutes ago)``: when an autosave was written."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
    age = max(0.0, now - timestamp)
    if age < 90:
        ago = "just now"
    elif age < 90 * 60:
        ago = f"{round(age / 60)} minutes ago"
    elif age < 36 * 3600:
        ago = f"{round(age / 3600)} hours ago"
    else:
        ago = f"{round(age / 86400)} days ago"
    return f"{stamp} ({ago})"


class QtAutosaveBar(QFrame):
    """"Work autosaved on ... was not closed normally. [Restore] [Discard]"."""

    def __init__(self, info: AutosaveInfo, on_restore: Callable[[AutosaveInfo], None],
                 on_discard: Callable[[AutosaveInfo], None], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.info = info
        self.setObjectName("autosaveBar")
        self.setStyleSheet("#autosaveBar { background: #fff4d6; border-bottom: 1px solid #e0c068; }"
                           "#autosaveBar QLabel { color: #3a2e00; }")
        self.label = QLabel(f"SqueezeStudio did not close normally last time. Work was autosaved on "
                            f"{describe_time(info.timestamp)}.")
        self.label.setWordWrap(True)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip(str(info.path))
        self.discard_button = QPushButton("Discard")
        self.restore_button.clicked.connect(lambda: self._answer(on_restore))
        self.discard_button.clicked.connect(lambda: self._answer(on_discard))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.restore_button)
        layout.addWidget(self.discard_button)

    def _answer(self, action: Callable[[AutosaveInfo], None]) -> None:
        self.hide()
        action(self.info)
        self.deleteLater()
