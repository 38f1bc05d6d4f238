"""The main window: docks, menus, shortcuts, drag and drop, undo/redo, projects, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication

from squeezestudio.core.session.experiments import Experiment
from squeezestudio.core.session.studio_session import StudioSession, recipe_to_dict
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.core.compression.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from squeezestudio.core.io.loading import save_safetensors
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "lenet.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32), path)
    return path


@pytest.fixture
def window(qtbot, app_settings, toy_methods):
    w = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings, methods=toy_methods)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.jobs.shutdown()


def _drop(widget, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return mime


def test_layout_menus_and_shortcuts(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Trade-off", "Classify", "Graph", "Compare"]
    assert window.controls is not None and set(window.controls.groups) == {"prune", "cluster"}
    assert window.controls_dock.widget().isAncestorOf(window.controls)  # under the stage list
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&Run", "&View", "&Help"]
    keys = {name: window.window_actions[name].shortcut() for name in ("undo", "redo", "evaluate", "cancel",
                                                                      "export", "save_project", "open_model")}
    assert keys["redo"] == QKeySequence("Ctrl+Shift+Z") and keys["evaluate"] == QKeySequence("F5")
    assert keys["cancel"] == QKeySequence("Esc") and keys["export"] == QKeySequence("Ctrl+E")
    assert keys["undo"].matches(QKeySequence("Ctrl+Z")) == QKeySequence.SequenceMatch.ExactMatch
    assert keys["open_model"].matches(QKeySequence("Ctrl+O")) == QKeySequence.SequenceMatch.ExactMatch


def test_drop_a_model_opens_it_and_fills_the_layer_table(qtbot, window, model_file, app_settings):
    mime = _drop(window, model_file)
    qtbot.waitUntil(lambda: window.session.handle is not None, timeout=20000)
    assert mime is not None
    assert "lenet5" in window.windowTitle()
    qtbot.waitUntil(lambda: len(window.layers.rows) > 0, timeout=20000)
    assert [r.name for r in window.layers.rows] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert window.layers.rows[0].params == 6 * 1 * 5 * 5 + 6
    assert app_settings.recent_files()[0] == str(model_file)
    recent = [a.text() for a in window.window_actions.recent_menu.actions()]
    assert any(str(model_file) in t for t in recent)


def test_errors_are_messages_not_crashes(qtbot, window, tmp_path):
    window.open_model(str(tmp_path / "missing.safetensors"))
    qtbot.waitUntil(lambda: bool(window.last_error[0]), timeout=10000)
    assert "missing.safetensors" in window.last_error[0] or "exist" in window.last_error[0]
    assert window.message_label.text() == window.last_error[0]
    assert window.isVisible()


def test_evaluate_without_data_says_what_to_do(window):
    window.evaluate_now()
    assert "Open a model" in window.message_label.text()


def _recipe(sparsity):
    return {"version": 1, "methods": {"prune": {"sparsity": sparsity}}, "layers": {}}


def test_controls_undo_redo_and_point_click(qtbot, window):
    window.controls.groups["prune"].setChecked(True)
    window.controls.forms["prune"].editors["sparsity"].editor.setValue(0.7)
    window.controls.flush()
    assert recipe_to_dict(window.session.recipe) == _recipe(pytest.approx(0.7))
    assert window.window_actions["undo"].isEnabled()
    window.controls.forms["prune"].editors["sparsity"].editor.setValue(0.8)
    window.controls.flush()
    window.window_actions["undo"].trigger()
    assert window.controls.forms["prune"].editors["sparsity"].value() == pytest.approx(0.7)
    window.window_actions["redo"].trigger()
    assert window.controls.forms["prune"].editors["sparsity"].value() == pytest.approx(0.8)

    log = window.session.experiments
    log.append(Experiment("orig", {}, "original", 4000, {"top1": 0.9}, is_original=True))
    log.append(Experiment("p3", _recipe(0.3), "prune 30%", 3000, {"top1": 0.89}))
    assert window.plot.frontier_ids == ["p3", "orig"]
    window.plot.pointClicked.emit("p3")
    assert recipe_to_dict(window.session.recipe) == _recipe(0.3)
    assert window.controls.forms["prune"].editors["sparsity"].value() == pytest.approx(0.3)
    assert window.plot.current_id == "p3"
    window.plot.pointClicked.emit("orig")
    assert not window.controls.groups["prune"].isChecked()


def test_layer_selection_reaches_session_and_override_panel(qtbot, window, model_file):
    window.open_model(str(model_file))
    qtbot.waitUntil(lambda: len(window.layers.rows) > 0, timeout=20000)
    name = window.layers.rows[1].name
    window.layers.select_layer(name)
    assert window.session.selected_layer == name
    assert name in window.controls.layer_box.title()
    window.session.select_layer(window.layers.rows[0].name)
    assert window.layers.selected == window.layers.rows[0].name


def test_project_save_and_reopen(qtbot, window, tmp_path, model_file):
    window.open_model(str(model_file))
    qtbot.waitUntil(lambda: window.session.handle is not None, timeout=20000)
    window.session.experiments.append(Experiment("a", _recipe(0.5), "prune 50%", 1234, {"top1": 0.5}))
    path = tmp_path / "p.sqproj"
    window._save_to(str(path))
    assert path.is_file() and "Saved" in window.message_label.text()
    other = QtMainWindow(StudioSession(registry=default_registry()), settings=window.settings, methods=window._methods)
    qtbot.addWidget(other)
    other.open_project(str(path))
    assert other.session.experiments.find("a").size_bytes == 1234
    assert other.session.model_path == str(model_file)
    assert len(other.plot.scatter.data) == 1
    other.jobs.shutdown()


def test_geometry_is_remembered(qtbot, window, app_settings):
    window.resize(900, 700)
    window.close()
    geometry, state = app_settings.geometry()
    assert geometry is not None and state is not None


def test_a_remembered_window_too_small_to_use_opens_at_a_usable_size(qtbot, app_settings):
    small = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings)
    qtbot.addWidget(small)
    small.resize(500, 300)
    small.close()
    again = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings)
    qtbot.addWidget(again)
    screen = again.screen().availableGeometry()
    assert (again.width(), again.height()) == (min(1280, screen.width()), min(820, screen.height()))
    assert again.width() > 500 and again.height() > 300


def test_no_display_gives_a_clear_message():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c",
                             "from squeezestudio.gui.app import run_gui; raise SystemExit(run_gui())"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "needs a display" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_first_paint_needs_neither_torch_nor_pyqtgraph():
    """The window paints before the slow imports (torch ~1.6 s, pyqtgraph ~0.5 s) happen."""
    code = ("import sys\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from squeezestudio.gui.qt_main_window import QtMainWindow\n"
            "w = QtMainWindow(lazy=True); w.show(); app.processEvents()\n"
            "print('torch' in sys.modules, 'pyqtgraph' in sys.modules)\n"
            "w.finish_setup()\n"
            "print('pyqtgraph' in sys.modules, w.plot is not None and w.tabs.widget(0) is w.plot)\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True", "True"]
