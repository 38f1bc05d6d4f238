"""How long the GUI thread stalls while a job runs: JobManager (worker thread) against the same job run inline.

A 10 ms heartbeat timer records the gaps between its ticks while a CPU-bound
job (matrix products with short sleeps, like an evaluation) runs, first in
``qt_worker.JobManager`` and then, as the baseline, directly on the GUI
thread. Prints the longest gap of each and their ratio; the worker's longest
gap should stay near the timer period however long the job takes.

    python benchmarks/bench_gui_responsiveness.py [--seconds 0.8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _job(total_s: float):
    import torch

    def run(progress=None, cancel=None):
        a = torch.randn(64, 64)
        for _ in range(20):
            for _ in range(20):
                a = torch.tanh(a @ a.T / 64)
            time.sleep(total_s / 20)
        return float(a.sum())
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.8, help="length of the job")
    args = parser.parse_args()
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from squeezestudio.gui.qt_worker import JobManager

    app = QApplication.instance() or QApplication([])
    clock = QElapsedTimer()
    clock.start()
    gaps: list[int] = []
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(10)

    manager, done = JobManager(), []
    in_worker, inline = _job(args.seconds), _job(args.seconds)  # torch is imported here, before timing
    in_worker()  # warm up torch's kernels once
    for _ in range(5):
        app.processEvents()
    gaps.clear()
    last[0] = clock.elapsed()
    manager.start("job", in_worker, on_finished=done.append)
    while not done:
        app.processEvents()
        time.sleep(0.001)
    worker_gap, gaps[:] = max(gaps, default=0), []

    last[0] = clock.elapsed()
    QTimer.singleShot(0, lambda: done.append(inline()))  # the baseline: the same job on the GUI thread
    while len(done) < 2:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    inline_gap = max(gaps, default=0)
    timer.stop()
    manager.shutdown()
    print(f"longest GUI-thread gap during a {args.seconds:.1f} s job: worker {worker_gap} ms, "
          f"inline {inline_gap} ms; inline / worker = {inline_gap / max(worker_gap, 1):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
