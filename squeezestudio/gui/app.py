"""Start the desktop app: check for a display, paint the window fast, then load.

Time to first paint matters, so the window is shown before torch and the
compression modules are imported; the model (the bundled demo by default)
and data load in workers after the first frame.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional, Sequence

NO_DISPLAY_MESSAGE = ("SqueezeStudio needs a display: none was found (DISPLAY and WAYLAND_DISPLAY are unset). "
                      "Run it in a desktop session, use xvfb-run, or set QT_QPA_PLATFORM=offscreen.")


def display_problem(env: Optional[dict[str, str]] = None, platform: str = sys.platform) -> Optional[str]:
    """A one-line reason the GUI cannot start here, or None when it can."""
    env = dict(os.environ) if env is None else env
    if not platform.startswith("linux"):
        return None
    if env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY_MESSAGE


def run_gui(model_path: Optional[str] = None, data: Optional[str] = None, *, trust: bool = False,
            argv: Optional[Sequence[str]] = None, load_options: Optional[Mapping[str, Any]] = None) -> int:
    """Open the main window (the bundled demo when no model is given); returns the exit code.

    ``load_options`` (``preprocess``, ``class_names``, ``arch``: what ``gui``'s
    flags say) go to the loader of ``model_path`` only.
    """
    problem = display_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from squeezestudio.gui.qt_graph_view import prepare_webengine

    prepare_webengine()  # WebEngine needs its settings before the QApplication exists
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else [sys.argv[0]])
    app.setApplicationName("SqueezeStudio")
    app.setOrganizationName("SqueezeStudio")
    from squeezestudio.gui.qt_main_window import QtMainWindow

    window = QtMainWindow(lazy=True)
    window.show()
    app.processEvents()  # paint the window before the slow imports below

    def after_first_paint() -> None:
        window.finish_setup()
        window.offer_autosave()  # a non-modal bar, only after an unclean exit
        path, source = model_path, data
        if path is None:
            from squeezestudio.core.io.demo_files import DEMO_DATA, demo_model_path
            try:
                path = str(demo_model_path())
            except Exception as exc:  # noqa: BLE001 - a missing demo is a message, not a crash
                window.show_error(f"The bundled demo could not be found: {exc}")
                return
            source = source or DEMO_DATA
        if source:
            window.session.data_source = source  # loaded for the model once it is open
        window.open_model(path, trust=trust, options=dict(load_options or {}))

    QTimer.singleShot(0, after_first_paint)
    return int(app.exec())


def main() -> int:
    """``python -m squeezestudio.gui.app [model] [data]``."""
    args = sys.argv[1:]
    return run_gui(args[0] if args else None, args[1] if len(args) > 1 else None)


if __name__ == "__main__":
    raise SystemExit(main())
