"""GUI startup: time from process start to the main window's first paint (goal < 2.5 s).

Runs ``python -m squeezestudio.gui.app`` style start-up in fresh subprocesses
(offscreen), each printing the time of its window's first paint event
measured from the process start (``time.time()`` against the process's
creation time); reports the median over several runs, and when the demo's
original point appeared, for reference.

    python benchmarks/bench_gui_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, time
from PySide6.QtCore import QObject, QEvent, QTimer
from PySide6.QtWidgets import QApplication

start = float(sys.argv[1])

class FirstPaint(QObject):
    def __init__(self):
        super().__init__()
        self.painted = None
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and self.painted is None:
            self.painted = time.time() - start
            print(f"first_paint {self.painted:.3f}", flush=True)
        return False

app = QApplication([])
spy = FirstPaint()
app.installEventFilter(spy)
import squeezestudio.gui.app as gui_app
from squeezestudio.gui import qt_main_window

original_init = qt_main_window.QtMainWindow.__init__
def init(self, *a, **k):
    original_init(self, *a, **k)
    def check():
        if self.session.experiments.original() is not None:
            print(f"original_point {time.time() - start:.3f}", flush=True)
            app.quit()
        else:
            QTimer.singleShot(20, check)
    QTimer.singleShot(20, check)
    QTimer.singleShot(120000, app.quit)
qt_main_window.QtMainWindow.__init__ = init
raise SystemExit(gui_app.run_gui())
"""


def one_run(env: dict[str, str]) -> dict[str, float]:
    started = time.time()  # just before the interpreter is created: the user's click
    out = subprocess.run([sys.executable, "-c", CHILD, repr(started)], env=env, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    values = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("first_paint", "original_point"):
            values[key] = float(value)
    if "first_paint" not in values:
        raise SystemExit(f"the child did not paint:\n{out.stderr[-2000:]}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import tempfile

    home = tempfile.mkdtemp(prefix="squeezestudio-bench-")  # never the user's settings or autosave
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               SQUEEZESTUDIO_HOME=home, XDG_CONFIG_HOME=home)
    runs = [one_run(env) for _ in range(args.repeats)]
    paint = [r["first_paint"] for r in runs]
    ready = [r["original_point"] for r in runs if "original_point" in r]
    print(f"process start -> first paint, {len(runs)} runs: median {statistics.median(paint):.2f} s "
          f"(min {min(paint):.2f}, max {max(paint):.2f})   goal < 2.5 s: "
          f"{'met' if statistics.median(paint) < 2.5 else 'MISSED'}")
    if ready:
        print(f"process start -> the demo's original point on the plot: median {statistics.median(ready):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
