"""The window's menus, actions and keyboard shortcuts, in one place.

Actions call methods of the window by name (or a function of the window,
for actions that live in their own module), so this file is a readable list
of what the app offers and under which keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from squeezestudio.gui.qt_subset_actions import ask_interactive_limit, measure_on_all_images


@dataclass
class WindowActions:
    """Every action, reachable by name (tests trigger them directly)."""

    actions: dict[str, QAction] = field(default_factory=dict)
    recent_menu: Optional[QMenu] = None
    view_menu: Optional[QMenu] = None

    def __getitem__(self, name: str) -> QAction:
        return self.actions[name]


# name, text, shortcut, status tip, window method (or a function taking the window)
ACTIONS: tuple[tuple[str, str, Any, str, Any], ...] = (
    ("open_model", "&Open model…", QKeySequence.StandardKey.Open, "Open a model file", "ask_open_model"),
    ("model_input", "Model &input…", None, "Input size and preprocessing: how an image becomes the model's "
     "input, with a preview", "ask_model_input"),
    ("open_digits", "Open &digits (built-in)", None, "Evaluate on scikit-learn's digits", "open_digits"),
    ("open_folder", "Open image &folder…", None, "One sub-folder per class", "ask_open_folder"),
    ("open_csv", "Open &CSV list…", None, "Rows of path,label", "ask_open_csv"),
    ("open_training", "Open &training data…", None, "A labelled folder or CSV list to retrain on",
     "ask_open_training_data"),
    ("open_project", "Open &project…", "Ctrl+Shift+O", "Reopen a saved project", "ask_open_project"),
    ("save_project", "&Save project", QKeySequence.StandardKey.Save, "Save model, data and every result",
     "save_project"),
    ("save_project_as", "Save project &as…", "Ctrl+Shift+S", "Save the project under a new name",
     "ask_save_project"),
    ("recover", "&Recover autosave…", None, "Reopen the last automatic save", "recover_autosave"),
    ("export", "&Export…", "Ctrl+E", "Write the compressed model and reports", "ask_export"),
    ("quit", "&Quit", QKeySequence.StandardKey.Quit, "Leave SqueezeStudio", "close"),
    ("undo", "&Undo", QKeySequence.StandardKey.Undo, "Back to the previous recipe", "undo"),
    ("redo", "&Redo", "Ctrl+Shift+Z", "Re-apply the undone recipe", "redo"),
    ("evaluate", "&Evaluate now", "F5", "Compress and evaluate the current settings", "evaluate_now"),
    ("cancel", "&Cancel job", "Esc", "Stop the running job", "cancel_jobs"),
    ("run_cluster", "Run on c&luster…", None, "Measure a grid over the current recipe on a Ray cluster",
     "ask_run_on_cluster"),
    ("search", "&Find the best model under…", "Ctrl+B", "Search per-layer settings for the most accurate "
     "model within a byte budget", "ask_search"),
    ("latency", "Measure &latency of this point", None, "Time the point's float and int8 ONNX in onnxruntime",
     "ask_latency"),
    ("measure_all", "Measure on &all images", "Shift+F5", "Measure the highlighted point (and the original) on "
     "every image, not the interactive subset", measure_on_all_images),
    ("subset", "Interactive &subset…", None, "How many images interactive points are measured on",
     ask_interactive_limit),
    ("about", "&About SqueezeStudio", None, "Version and credits", "show_about"),
)


def build_actions(window: Any) -> WindowActions:
    """Create the actions and menus on ``window`` (a QMainWindow)."""
    result = WindowActions()
    for name, text, shortcut, tip, method in ACTIONS:
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(_caller(window, method))
        window.addAction(action)  # shortcuts work even when a dock has focus
        result.actions[name] = action

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(result["open_model"])
    file_menu.addAction(result["model_input"])
    data_menu = file_menu.addMenu("Open &data")
    for name in ("open_digits", "open_folder", "open_csv"):
        data_menu.addAction(result[name])
    data_menu.addSeparator()
    data_menu.addAction(result["open_training"])
    result.recent_menu = file_menu.addMenu("Recent &files")
    file_menu.addSeparator()
    for name in ("open_project", "save_project", "save_project_as", "recover"):
        file_menu.addAction(result[name])
    file_menu.addSeparator()
    file_menu.addAction(result["export"])
    file_menu.addSeparator()
    file_menu.addAction(result["quit"])
    edit_menu = bar.addMenu("&Edit")
    for name in ("undo", "redo"):
        edit_menu.addAction(result[name])
    run_menu = bar.addMenu("&Run")
    for name in ("evaluate", "cancel", "run_cluster", "search", "latency", "measure_all", "subset"):
        run_menu.addAction(result[name])
    result.view_menu = bar.addMenu("&View")
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(result["about"])
    return result


def fill_recent_menu(menu: QMenu, files: list[str], open_file: Callable[[str], None],
                     clear: Callable[[], None]) -> None:
    """Rebuild the Recent files menu."""
    menu.clear()
    for i, path in enumerate(files):
        action = menu.addAction(f"&{i + 1} {path}" if i < 9 else path)
        action.triggered.connect(lambda _=False, p=path: open_file(p))
    if files:
        menu.addSeparator()
        menu.addAction("Clear list").triggered.connect(lambda _=False: clear())
    else:
        menu.addAction("(none yet)").setEnabled(False)


def _caller(window: Any, method: Any) -> Callable[..., None]:
    if callable(method):
        return lambda *_: method(window)
    return lambda *_: getattr(window, method)()
