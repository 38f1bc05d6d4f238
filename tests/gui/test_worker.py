"""Jobs run off the GUI thread, report results/errors/cancel, and never block the GUI."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from PySide6.QtCore import QTimer

from squeezestudio.core.errors import DataError
from squeezestudio.core.progress import check, report
from squeezestudio.gui.qt_worker import JobManager, QtJobStatus, describe_error


def _slow(total_s: float):
    def fn(progress=None, cancel=None):
        steps = 20
        for i in range(steps):
            check(cancel)
            a = torch.randn(64, 64)
            for _ in range(20):
                a = torch.tanh(a @ a.T / 64)
            time.sleep(total_s / steps)
            report(progress, (i + 1) / steps, f"step {i + 1}")
        return float(a.sum())
    return fn


@pytest.fixture
def manager(qtbot):
    m = JobManager()
    yield m
    m.shutdown()


def test_finished_delivers_result_and_progress(qtbot, manager):
    torch.manual_seed(0)
    results, fractions = [], []
    manager.progress.connect(lambda f, m: fractions.append(f))
    busy = []
    manager.busyChanged.connect(busy.append)
    manager.start("job", lambda progress, cancel: (report(progress, 0.5, "half"), 41 + 1)[1],
                  on_finished=results.append)
    qtbot.waitUntil(lambda: busy == [True, False], timeout=5000)
    assert results == [42]
    assert fractions == [0.5]
    assert not manager.busy


def test_failed_gives_the_sentence_for_our_errors_and_details_for_others(qtbot, manager):
    messages = []

    def bad_data(progress, cancel):
        raise DataError("the folder holds no images; choose a folder with one sub-folder per class")

    with qtbot.waitSignal(manager.failed, timeout=5000) as blocker:
        manager.start("a", bad_data)
    assert blocker.args == ["the folder holds no images; choose a folder with one sub-folder per class", ""]

    with qtbot.waitSignal(manager.failed, timeout=5000) as blocker:
        manager.start("b", lambda progress, cancel: [][1], on_failed=lambda m, d: messages.append(m))
    message, details = blocker.args
    assert "IndexError" in message and "Traceback" in details
    assert messages == [message]


def test_describe_error_for_an_empty_message():
    message, details = describe_error(RuntimeError())
    assert "RuntimeError" in message and details


def test_cancel_stops_a_running_job(qtbot, manager):
    outcome = []

    def twenty_seconds(progress=None, cancel=None):
        for _ in range(1000):
            check(cancel)
            time.sleep(0.02)
        return "finished"

    manager.start("job", twenty_seconds, on_finished=outcome.append, on_cancelled=lambda: outcome.append("cancelled"))
    qtbot.wait(100)
    started = time.monotonic()
    manager.cancel("job")
    qtbot.waitUntil(lambda: outcome == ["cancelled"], timeout=5000)
    assert time.monotonic() - started < 5.0  # far less than the 20 s the job would take
    assert not manager.busy


def test_new_job_supersedes_and_old_result_is_ignored(qtbot, manager):
    results = []
    first = manager.start("eval", _slow(1.0), on_finished=lambda r: results.append("first"))
    manager.start("eval", lambda progress, cancel: "second", on_finished=results.append)
    assert first.token.cancelled
    qtbot.waitUntil(lambda: not manager.busy, timeout=5000)
    qtbot.wait(50)
    assert results == ["second"]


def test_a_job_runs_off_the_gui_thread_while_the_event_loop_goes_on(qtbot, manager):
    """The job runs on another thread and GUI timers keep firing meanwhile.

    How long the GUI thread may stall is a speed claim, measured against a
    blocking baseline in ``benchmarks/bench_gui_responsiveness.py``, not here.
    """
    torch.manual_seed(0)
    status = QtJobStatus(manager)
    qtbot.addWidget(status)
    job_threads, beats_during_job, done = [], [], []
    slow = _slow(0.8)

    def job(progress=None, cancel=None):
        job_threads.append(threading.get_ident())
        return slow(progress, cancel)

    timer = QTimer()
    timer.timeout.connect(lambda: beats_during_job.append(True) if job_threads and not done else None)
    timer.start(10)
    manager.start("job", job, on_finished=done.append)
    assert status.bar.isVisibleTo(status)
    qtbot.waitUntil(lambda: bool(done), timeout=10000)
    timer.stop()
    assert job_threads and job_threads[0] != threading.get_ident()
    assert beats_during_job  # the event loop ran while the job did
    assert not status.bar.isVisibleTo(status)
