"""GUI latency on the bundled demo: from a control change to the new point on the plot.

Sets the pruning sparsity in the real controls (offscreen window), and times
until the trade-off plot shows the new experiment as its current point.
Reports the median over several changes, with and without the controls'
debounce delay (the wait that turns a slider drag into one evaluation).
Goal: < 0.5 s without the debounce.

    python benchmarks/bench_gui_latency.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from squeezestudio.core.compression.registry import default_registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import tempfile

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from squeezestudio.core.io.demo_files import DEMO_DATA, demo_model_path
    from squeezestudio.core.session.studio_session import StudioSession
    from squeezestudio.gui.qt_main_window import QtMainWindow
    from squeezestudio.gui.qt_method_controls import DEBOUNCE_MS
    from squeezestudio.gui.qt_screenshots import wait_until
    from squeezestudio.gui.qt_settings import AppSettings, make_settings

    scratch = tempfile.TemporaryDirectory()
    os.environ["SQUEEZESTUDIO_HOME"] = scratch.name
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=AppSettings(make_settings(f"{scratch.name}/s.ini")))
    window.show()
    window.session.data_source = DEMO_DATA
    window.open_model(str(demo_model_path()))
    log = window.session.experiments
    wait_until(lambda: log.original() is not None, 300, "the original point")
    wait_until(lambda: not window.jobs.busy, 300, "idle")
    print(f"demo: {window.session.handle.name}, {len(window.session.data)} validation images, "
          f"original {log.original().size_bytes:,} bytes")

    window.controls.groups["prune"].setChecked(True)
    editor = window.controls.forms["prune"].editors["sparsity"].editor
    wait_until(lambda: not window.controls.timer.isActive() and not window.jobs.busy and len(log) >= 2, 300,
               "the first pruning point")
    with_debounce, without_debounce, evaluate_only = [], [], []
    levels = [0.31 + 0.09 * i for i in range(args.repeats)]
    for level in levels:
        before = len(log)
        started = time.perf_counter()
        editor.setValue(level)  # what dragging the slider or typing does
        wait_until(lambda: not window.controls.timer.isActive(), 30, "the debounce")
        fired = time.perf_counter()
        wait_until(lambda: len(log) > before and window.plot.current_id == log.list()[-1].id, 300,
                   f"the point for sparsity {level:.2f}")
        app.processEvents()  # the plot repaints on the next event-loop turn
        shown = time.perf_counter()
        with_debounce.append(shown - started)
        without_debounce.append(shown - fired)
        wait_until(lambda: not window.jobs.busy, 300, "idle")
        evaluate_only.append(log.list()[-1].metrics.get("latency") or 0.0)

    def ms(values: list[float]) -> str:
        return f"median {1000 * statistics.median(values):.0f} ms (min {1000 * min(values):.0f}, " \
               f"max {1000 * max(values):.0f})"

    print(f"control change -> point on the plot, {len(levels)} changes (debounce {DEBOUNCE_MS} ms):")
    print(f"  excluding the debounce: {ms(without_debounce)}   goal < 500 ms: "
          f"{'met' if statistics.median(without_debounce) < 0.5 else 'MISSED'}")
    print(f"  including the debounce: {ms(with_debounce)}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
