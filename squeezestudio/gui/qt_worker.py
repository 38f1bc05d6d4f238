"""Run core functions off the GUI thread, with progress, cancel and clean errors.

A job wraps ``fn(progress=..., cancel=...)`` (the core's calling convention)
in a QRunnable; its signals arrive on the GUI thread. :class:`JobManager`
keeps one job per *key* (e.g. ``"evaluate"``): starting a new one cancels the
superseded one and ignores whatever it still reports, which is how a fresh
control change replaces a running evaluation. Errors never crash the app:
a SqueezeStudioError becomes its own sentence, anything else a short message
plus the traceback as details.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.gui.qt_safe_text import set_plain_text


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(message, details) to show for an exception raised by a core function."""
    if isinstance(exc, SqueezeStudioError):
        return str(exc), ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"Something went wrong ({type(exc).__name__}: {text}).", details


class JobSignals(QObject):
    """Signals of one job (a QRunnable cannot have signals itself)."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()


class Job(QRunnable):
    """One call of ``fn(progress=..., cancel=...)`` on a pool thread."""

    def __init__(self, fn: Callable[..., Any], name: str = "") -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.name = name
        self.token = CancelToken()
        self.signals = JobSignals()
        self.done = False

    def cancel(self) -> None:
        self.token.cancel()

    def _progress(self, fraction: float, message: str = "") -> None:
        if not self.token.cancelled:
            self.signals.progress.emit(float(fraction), str(message))

    def run(self) -> None:  # runs on a pool thread
        try:
            self.token.raise_if_cancelled()
            result = self.fn(progress=self._progress, cancel=self.token)
            if self.token.cancelled:
                raise Cancelled("cancelled")
        except Cancelled:
            self.done = True
            self.signals.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self.done = True
            message, details = describe_error(exc)
            self.signals.failed.emit(message, details)
        else:
            self.done = True
            self.signals.finished.emit(result)


class JobManager(QObject):
    """Starts jobs on its own thread pool; one running job per key.

    Signals summarise the newest job for the status bar: ``busyChanged``,
    ``progress``, and ``failed(message, details)`` for the error area.
    """

    busyChanged = Signal(bool)
    progress = Signal(float, str)
    failed = Signal(str, str)

    def __init__(self, parent: Optional[QObject] = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._current: dict[str, Job] = {}
        self._alive: set[Job] = set()

    @property
    def busy(self) -> bool:
        return bool(self._current)

    def current(self, key: str) -> Optional[Job]:
        return self._current.get(key)

    def start(self, key: str, fn: Callable[..., Any], *,
              on_finished: Optional[Callable[[Any], None]] = None,
              on_failed: Optional[Callable[[str, str], None]] = None,
              on_cancelled: Optional[Callable[[], None]] = None) -> Job:
        """Run ``fn`` for ``key``, cancelling the job it supersedes."""
        old = self._current.get(key)
        if old is not None:
            old.cancel()
        job = Job(fn, key)
        was_busy = self.busy
        self._current[key] = job
        self._alive.add(job)

        def is_current() -> bool:
            return self._current.get(key) is job

        def settle() -> None:
            self._alive.discard(job)
            if is_current():
                del self._current[key]
                if not self.busy:
                    self.busyChanged.emit(False)

        def finished(result: Any) -> None:
            current = is_current()
            settle()
            if current and on_finished is not None:
                on_finished(result)

        def failed(message: str, details: str) -> None:
            current = is_current()
            settle()
            if current:
                self.failed.emit(message, details)
                if on_failed is not None:
                    on_failed(message, details)

        def cancelled() -> None:
            current = is_current()
            settle()
            if current and on_cancelled is not None:
                on_cancelled()

        def progressed(fraction: float, message: str) -> None:
            if is_current():
                self.progress.emit(fraction, message)

        job.signals.finished.connect(finished)
        job.signals.failed.connect(failed)
        job.signals.cancelled.connect(cancelled)
        job.signals.progress.connect(progressed)
        if not was_busy:
            self.busyChanged.emit(True)
        self.pool.start(job)
        return job

    def cancel(self, key: Optional[str] = None) -> None:
        """Ask one job (or every job) to stop; it reports ``cancelled`` when it does."""
        jobs = list(self._current.values()) if key is None else [self._current.get(key)]
        for job in jobs:
            if job is not None:
                job.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for the threads (on quit)."""
        self.cancel()
        return bool(self.pool.waitForDone(timeout_ms))


class QtJobStatus(QWidget):
    """Status-bar widget: a message, a progress bar and a cancel button."""

    def __init__(self, manager: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.manager = manager
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc)")
        self.cancel_button.clicked.connect(lambda: manager.cancel())
        for w in (self.label, self.bar, self.cancel_button):
            layout.addWidget(w)
        manager.busyChanged.connect(self._busy)
        manager.progress.connect(self._progress)
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if not busy:
            self.label.setText("")
            self.bar.setValue(0)

    def _progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(round(fraction * 1000)))
        set_plain_text(self.label, message)
