"""Render the real main window offscreen and save the README's screenshots.

The pictures come from the app itself on the bundled demo, not from mock-ups:
the window opens the model and data through the same workers a user's clicks
start, a few configurations are evaluated (the same jobs a control change
starts), images are dropped on the Classify tab with real drag-and-drop
events, and each view is grabbed once its results are on screen.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.recipe import weighted_layers
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.digits import digits_as_images
from squeezestudio.core.io.demo_files import DEMO_DATA, demo_model_path, sample_images
from squeezestudio.core.session.studio_session import StudioSession, recipe_from_dict
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_settings import AppSettings, make_settings

SCREENSHOT_RECIPES: tuple[dict[str, Any], ...] = (
    {"version": 1, "methods": {"prune": {"sparsity": 0.5}}, "layers": {}},
    {"version": 1, "methods": {"prune": {"sparsity": 0.8}}, "layers": {}},
    {"version": 1, "methods": {"cluster": {"bits": 5}}, "layers": {}},
    {"version": 1, "methods": {"cluster": {"bits": 4}}, "layers": {}},
    {"version": 1, "methods": {"prune": {"sparsity": 0.8}, "cluster": {"bits": 5}}, "layers": {}},
    {"version": 1, "methods": {"prune": {"sparsity": 0.5}, "cluster": {"bits": 4}},
     "layers": {"features.3.expand3x3": {"cluster": {"bits": 3}}}},
)
"""What the screenshot evaluates; the last one stays selected in the controls (its override marked)."""

SHOWN_LAYER = "features.3.expand3x3"
"""The layer selected in the screenshot, so the selected-layer panel shows its override."""

WINDOW_SIZE = (1440, 900)


def shown_layer(module: Any) -> str:
    """:data:`SHOWN_LAYER` when the model has it (the demo), else its layer with the most weights."""
    layers = weighted_layers(module)
    if SHOWN_LAYER in layers or not layers:
        return SHOWN_LAYER
    return max(layers, key=lambda name: layers[name].weight.numel())


def for_model(recipe: dict[str, Any], shown: str) -> dict[str, Any]:
    """``recipe`` with its per-layer overrides on ``shown`` (a model other than the demo lacks the demo's layers)."""
    layers = recipe.get("layers") or {}
    return {**recipe, "layers": {shown: override for override in layers.values()}} if layers else recipe


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Process Qt events until ``predicate()`` holds; a clear error after ``timeout_s``."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SqueezeStudioError(f"the screenshot timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.3) -> None:
    """Let layouts and repaints finish before a grab."""
    end = time.monotonic() + seconds
    app = QApplication.instance()
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def drop_files(widget: Any, paths: Sequence[Path]) -> None:
    """Send a real drag-enter and drop of ``paths`` to ``widget`` (as a file manager would)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)


def sample_files(count: int, folder: Path) -> list[Path]:
    """The shipped sample digits, or digits written to ``folder`` when none are shipped."""
    shipped = sample_images()
    if len(shipped) >= count:
        # Two different digits read better than two of the same class.
        return [shipped[0], shipped[len(shipped) // 2]][:count] if count == 2 else shipped[:count]
    paths = []
    for i, (name, image) in enumerate(digits_as_images(10, size=64)[::5][:count]):
        path = folder / f"digit_{name}_{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def _wait_for_netron(window, timeout_s: float) -> None:
    """With netron embedded, wait until it has drawn nodes (a blank page makes a useless picture)."""
    pane = window.graph_view.panes["original"] if window.graph_view is not None else None
    if pane is None or getattr(pane, "web_view", None) is None:
        return  # the fallback pane (no WebEngine) is ready as soon as it is shown
    names: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not names:
        if time.monotonic() > deadline:
            raise SqueezeStudioError(f"the screenshot timed out after {timeout_s:.0f} s waiting for netron")
        pane.graph_node_names(names.extend)  # asked twice a second; the answer arrives as an event
        settle(0.5)


def render_screenshots(out_dir: Path, model: Optional[str] = None, data: Optional[str] = None, *,
                       recipes: Sequence[dict[str, Any]] = SCREENSHOT_RECIPES, timeout_s: float = 240.0,
                       log: Callable[[str], None] = print,
                       options: Optional[dict[str, Any]] = None) -> list[Path]:
    """Open the window on ``model`` (default: the bundled demo) and save three PNGs in ``out_dir``.

    ``options`` (``preprocess``, ``class_names``, ``arch``) go to the model loader, as ``gui`` passes them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is None:
        model, data = str(demo_model_path()), data or DEMO_DATA
    if not data:
        raise SqueezeStudioError("give --data (digits, an image folder or a CSV list) to evaluate the model on")
    scratch = tempfile.TemporaryDirectory(prefix="squeezestudio-shots-")
    written: list[Path] = []
    saved_home = os.environ.get("SQUEEZESTUDIO_HOME")
    os.environ["SQUEEZESTUDIO_HOME"] = scratch.name  # the window's autosave on close stays in scratch
    try:
        settings = AppSettings(make_settings(str(Path(scratch.name) / "settings.ini")))  # never the user's
        window = QtMainWindow(StudioSession(registry=default_registry()), settings=settings)
        window.resize(*WINDOW_SIZE)
        window.show()
        session, log_ = window.session, window.session.experiments
        session.data_source = data
        window.open_model(model, options=options)
        wait_until(lambda: log_.original() is not None or bool(window.last_error[0]), timeout_s,
                   "the original model's evaluation")
        if window.last_error[0]:
            raise SqueezeStudioError(f"the window reported: {window.last_error[0]}")
        log(f"original: {log_.original().size_bytes:,} bytes")
        shown = shown_layer(session.handle.module)
        for recipe in (for_model(r, shown) for r in recipes):
            before = len(log_)
            session.set_recipe(recipe_from_dict(recipe))
            window.runner.evaluate(session.recipe)
            wait_until(lambda: len(log_) > before or bool(window.last_error[0]), timeout_s,
                       f"the evaluation of {recipe['methods']}")
            if window.last_error[0]:
                raise SqueezeStudioError(f"the window reported: {window.last_error[0]}")
            e = log_.list()[-1]
            log(f"{e.label}: {e.size_bytes:,} bytes, top-1 {100 * (e.metric('top1') or 0):.2f}%")
        wait_until(lambda: not window.jobs.busy, timeout_s, "the layer view")
        if window.layers is not None and window.layers.index_of(shown) is not None:
            window.layers.select_layer(shown)
        window.layers_dock.raise_()
        settle()
        written.append(_save(window, out_dir / "main_window.png"))

        window.tabs.setCurrentIndex(1)
        view = window.classify_view
        if view is None:
            raise SqueezeStudioError("the classify view is not available in this installation")
        drop_files(view, sample_files(2, Path(scratch.name)))
        wait_until(lambda: len(view.results()) >= 2 and not view.is_busy(), timeout_s, "the classifications")
        settle()
        written.append(_save(window, out_dir / "classify_view.png"))

        window.tabs.setCurrentIndex(2)
        wait_until(lambda: not window.jobs.busy, timeout_s, "the ONNX export for the graph view")
        _wait_for_netron(window, timeout_s)
        settle(1.0)
        written.append(_save(window, out_dir / "graph_view.png"))
        window.close()
    finally:
        if saved_home is None:
            os.environ.pop("SQUEEZESTUDIO_HOME", None)
        else:
            os.environ["SQUEEZESTUDIO_HOME"] = saved_home
        scratch.cleanup()
    return written


def _save(window: Any, path: Path) -> Path:
    """Grab ``window`` to a PNG through an atomic write."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not window.grab().save(buffer, "PNG"):
        raise SqueezeStudioError(f"the window could not be rendered to {path}")
    buffer.close()
    atomic_write_bytes(path, bytes(data.data()))
    return path
