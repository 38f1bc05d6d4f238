"""``squeezestudio screenshot OUT_DIR [MODEL] [--data D]``: the README's pictures from the real app.

Renders the main window offscreen (no display needed), evaluates a few
configurations on the bundled demo (or MODEL), and writes
``main_window.png``, ``classify_view.png`` and ``graph_view.png``.
"""

from __future__ import annotations

import argparse
import os

from squeezestudio.cli.common import add_preprocess_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screenshot", help="save screenshots of the app on the bundled demo (offscreen)",
                       description="Open the main window offscreen, evaluate a few pruning and "
                                   "clustering settings, and save main_window.png, classify_view.png "
                                   "and graph_view.png in OUT_DIR.")
    p.add_argument("out_dir", help="folder for the PNG files (created if missing)")
    p.add_argument("model", nargs="?", help="model file (default: the bundled demo model)")
    p.add_argument("--data", help="evaluation data: digits, an image folder or a CSV (default: digits)")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for each step")
    p.add_argument("--labels", metavar="FILE", help="class names: one per line, or a JSON list")
    p.add_argument("--arch", help="zoo architecture for a bare state_dict")
    add_preprocess_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["squeezestudio"])
    app.setApplicationName("SqueezeStudio")
    from squeezestudio.cli.cmd_gui import load_options
    from squeezestudio.gui.qt_screenshots import render_screenshots

    options = load_options(args)  # the model's preprocessing and labels, as `gui` takes them
    for path in render_screenshots(args.out_dir, args.model, args.data, timeout_s=float(args.timeout),
                                   options=options):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0
