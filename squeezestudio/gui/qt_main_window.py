"""The main window: docks around the trade-off plot, menus, status bar, drag and drop.

Layout (napari-like: thin views over one session):
left dock "Compression" (generated method controls), centre tabs "Trade-off"
/ "Classify" / "Graph", bottom docks "Layers" and "Sensitivity". Every slow
step runs through :class:`EvaluationRunner`'s jobs; errors appear in the
status bar, never as a crash. Views the other half of the GUI provides
(classify, graph, export, trust) are imported lazily and replaced by a label
when missing, so the window always opens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from squeezestudio.core.session.experiments import method_defaults
from squeezestudio.core.session.studio_session import StudioSession, recipe_from_dict, recipe_to_dict
from squeezestudio.core.printable import printable
from squeezestudio.gui.qt_actions import build_actions, fill_recent_menu
from squeezestudio.gui.qt_window_files import WindowFileActions
from squeezestudio.gui.qt_evaluation import EvaluationRunner, NeedsTrust, PointShown
from squeezestudio.gui.qt_next_step_bar import attach_next_step_bar
from squeezestudio.gui.qt_point_store_status import QtPointStoreStatus, point_caption
from squeezestudio.gui.qt_settings import AppSettings
from squeezestudio.gui.qt_safe_text import set_plain_text
from squeezestudio.gui.qt_trust_dialog import ask_trust
from squeezestudio.gui.qt_worker import JobManager, QtJobStatus

AUTOSAVE_MS = 60_000
PANEL_MIN_WIDTH = 330  # the selected-layer panel: its method names and modes readable
MESSAGE_MS = 20_000  # how long an information message stays in the status bar


def _beside(view: QWidget, panel: QWidget) -> QWidget:
    """The layer view with the selected-layer panel to its right, where the selection is made."""
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.addWidget(view)
    splitter.addWidget(panel)
    panel.setMinimumWidth(PANEL_MIN_WIDTH)
    splitter.setStretchFactor(0, 3)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([3 * PANEL_MIN_WIDTH, PANEL_MIN_WIDTH])
    return splitter


def _placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label


def _application_registry() -> Any:
    """The application's method registry (built-ins and plugins), built when first needed."""
    # lazy: the registry imports torch and the plugins (about 7 s cold); the window paints first
    from squeezestudio.core.compression.registry import default_registry
    return default_registry()


class QtMainWindow(WindowFileActions, QMainWindow):
    """SqueezeStudio's window over one :class:`StudioSession`."""

    def __init__(self, session: Optional[StudioSession] = None, *, settings: Optional[AppSettings] = None,
                 methods: Optional[Sequence[Any]] = None, lazy: bool = False) -> None:
        super().__init__()
        self.session = session or StudioSession(registry=_application_registry)
        self.settings = settings or AppSettings()
        self._methods = methods
        self.controls: Any = None
        self.stages: Any = None  # the Compression dock's stage list (QtStageList)
        self.classify_view: Any = None
        self.graph_view: Any = None
        self.compare_view: Any = None
        self.last_error = ("", "")
        self._temp = tempfile.TemporaryDirectory(prefix="squeezestudio-graph-")
        self._graph_key: Any = None
        self.shown_point: Optional[PointShown] = None  # the point every view shows now
        self.setWindowTitle("SqueezeStudio")
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.jobs = JobManager(self)
        self.runner = EvaluationRunner(self.session, self.jobs, self, limit=self.settings.interactive_limit())
        self.plot: Any = None  # pyqtgraph views are built after the first paint
        self.layers: Any = None
        self.tabs = QTabWidget()
        self.tabs.addTab(_placeholder("Loading the trade-off plot…"), "Trade-off")
        self.tabs.addTab(_placeholder("Loading the classify view…"), "Classify")
        self.tabs.addTab(_placeholder("Loading the graph view…"), "Graph")
        central = QWidget()
        self.central_layout = QVBoxLayout(central)  # the autosave bar goes above the tabs
        self.central_layout.setContentsMargins(0, 0, 0, 0)
        self.central_layout.setSpacing(0)
        self.central_layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.autosave_bar: Any = None
        self.export_dialog: Any = None
        self.controls_dock = self._dock("Compression", _placeholder("Loading compression methods…"),
                                        Qt.DockWidgetArea.LeftDockWidgetArea)
        self.layers_dock = self._dock("Layers", _placeholder("Loading the layer view…"),
                                      Qt.DockWidgetArea.BottomDockWidgetArea)
        self.sensitivity_dock = self._dock("Sensitivity", _placeholder("Per-layer sensitivity scan"),
                                           Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.layers_dock, self.sensitivity_dock)
        self.layers_dock.raise_()
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.window_actions = build_actions(self)
        for dock in (self.controls_dock, self.layers_dock, self.sensitivity_dock):
            self.window_actions.view_menu.addAction(dock.toggleViewAction())
        self.job_status = QtJobStatus(self.jobs)
        self.message_label = QLabel("")
        self.message_timer = QTimer(self)  # a child of the window: it dies with it
        self.message_timer.setSingleShot(True)
        self.message_timer.setInterval(MESSAGE_MS)
        self.message_timer.timeout.connect(self._clear_stale_message)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addWidget(self.message_label, 1)
        self.point_status = QtPointStoreStatus(self.session)
        self.statusBar().addPermanentWidget(self.point_status)
        self.statusBar().addPermanentWidget(self.job_status)
        self._refresh_recent()
        self._restore_geometry()
        self._wire()
        self.next_step = attach_next_step_bar(self)  # what to do next, e.g. with a model but no data
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        if not lazy:
            self.finish_setup()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _wire(self) -> None:
        s, r = self.session, self.runner
        s.events.recipe.connect(self._recipe_shown)
        s.events.selection.connect(self._selection_shown)
        s.events.model.connect(self._model_shown)
        r.rowsReady.connect(self._rows_ready)
        r.experimentReady.connect(self._experiment_shown)
        r.pointShown.connect(self._point_shown)
        s.experiments.on_change.append(lambda: QTimer.singleShot(0, self.point_status.refresh))
        r.message.connect(self.show_message)
        r.trustNeeded.connect(self._ask_trust)
        r.modelLoaded.connect(self._remember)
        r.dataLoaded.connect(self.settings.set_last_data)
        self.jobs.failed.connect(self.show_error)

    # -- lazily built parts (after the first paint) ------------------------
    def finish_setup(self) -> None:
        """Build the parts that import pyqtgraph, torch or optional modules.

        Their imports stay here, not at the top: the window paints first and
        these cost seconds (``benchmarks/bench_gui_startup.py``).
        """
        from squeezestudio.gui.qt_layer_view import QtLayerView
        from squeezestudio.gui.qt_method_controls import QtMethodControls
        from squeezestudio.gui.qt_tradeoff_plot import QtTradeoffPlot
        import pyqtgraph as pg

        # Axis text in the palette's text colour: dark on a light desktop, light on a dark one.
        pg.setConfigOptions(foreground=self.palette().color(QPalette.ColorRole.WindowText), antialias=True)

        self.plot = QtTradeoffPlot(self.session.experiments, defaults=method_defaults(self.session.registry),
                                   settings=self.settings)  # restores and remembers its x/y/colour
        self.plot.pointClicked.connect(self.restore_point)
        self._set_tab(0, self.plot)
        self.tabs.setCurrentIndex(0)
        self.layers = QtLayerView()
        self.layers.layerSelected.connect(self.session.select_layer)
        self.layers_dock.setWidget(self.layers)

        try:
            self.controls = QtMethodControls(self._methods if self._methods is not None
                                             else self.session.registry.methods())
        except Exception as exc:  # noqa: BLE001 - the window must still open
            self.controls_dock.setWidget(_placeholder(f"Compression methods are unavailable: {exc}"))
        else:
            from squeezestudio.gui.qt_stage_list import QtStageList, wrap_with_stages
            self.controls.recipeChanged.connect(self._controls_changed)
            self.controls.attach_session(self.session, self.jobs)
            self.stages = QtStageList(defaults=method_defaults(self.session.registry))
            self.stages.stageSelected.connect(self.controls.set_recipe_dict)
            self.stages.stagesChanged.connect(self.apply_recipe)
            self.controls_dock.setWidget(wrap_with_stages(self.stages, self.controls))
            self.controls.overridesChanged.connect(self.layers.set_overridden)
            self.layers_dock.setWidget(_beside(self.layers, self.controls.take_layer_panel()))
        from squeezestudio.gui.qt_classify_view import QtClassifyView
        from squeezestudio.gui.qt_graph_view import QtGraphView
        from squeezestudio.gui.qt_sensitivity_view import QtSensitivityView

        self.classify_view = self._optional_view(1, QtClassifyView)
        self.graph_view = self._optional_view(2, QtGraphView)
        self.tabs.currentChanged.connect(lambda index: self._refresh_graph() if index == 2 else None)
        from squeezestudio.gui.qt_compare_view import QtCompareView
        self.compare_view = QtCompareView(self.session, self.jobs)
        self.tabs.addTab(self.compare_view, "Compare")
        try:
            sensitivity = QtSensitivityView(self.session, self.jobs)
            sensitivity.recipeChosen.connect(self.apply_recipe)
            self.sensitivity_dock.setWidget(sensitivity)
        except Exception as exc:  # noqa: BLE001
            self.sensitivity_dock.setWidget(_placeholder(f"Sensitivity scan unavailable: {exc}"))

    def _optional_view(self, index: int, view_class: Callable[[], QWidget]) -> Any:
        try:
            view = view_class()
        except Exception as exc:  # noqa: BLE001 - an optional view failing is shown, not fatal
            widget, view = _placeholder(f"This view is not available: {exc}"), None
        else:
            widget = view
        self._set_tab(index, widget)
        return view

    def _set_tab(self, index: int, widget: QWidget) -> None:
        label = self.tabs.tabText(index)
        old = self.tabs.widget(index)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, widget, label)
        if old is not None:
            old.deleteLater()

    # -- session -> views ----------------------------------------------------
    def _recipe_shown(self, recipe: Any) -> None:
        if self.controls is not None:
            shown = recipe_to_dict(recipe)
            self.controls.set_recipe_dict(self.stages.show_recipe(shown) if self.stages is not None else shown)
        self.window_actions["undo"].setEnabled(self.session.can_undo)
        self.window_actions["redo"].setEnabled(self.session.can_redo)

    def _rows_ready(self, rows: list) -> None:
        if self.layers is not None:
            self.layers.set_rows(rows)

    def _selection_shown(self, name: Optional[str]) -> None:
        chosen = [name] if name else []
        if self.layers is not None:
            if name is not None and name in self.layers.selected_names:
                chosen = list(self.layers.selected_names)  # a multi-selection stays whole
            else:
                self.layers.select_layer(name, emit=False)
        if self.controls is not None:
            self.controls.set_layers(chosen)

    def _model_shown(self) -> None:
        handle = self.session.handle
        self.setWindowTitle(f"SqueezeStudio — {printable(getattr(handle, 'name', 'model'))}")
        if self.plot is not None:
            self.plot.set_current(None)
        self.shown_point = None
        self.layers_dock.setWindowTitle("Layers — the original model")
        self._update_classify(None)

    def _experiment_shown(self, experiment: Any) -> None:
        if self.plot is not None:
            self.plot.set_current(experiment.id)

    def _point_shown(self, shown: PointShown) -> None:
        """Every view now shows ``shown``'s model; they all say which point it is."""
        self.shown_point = shown
        experiment = shown.experiment
        if self.plot is not None:
            self.plot.set_current(experiment.id)
        caption = point_caption(self.session, experiment)
        self.layers_dock.setWindowTitle(f"Layers — {caption}")
        for index, name in ((1, "Classify"), (2, "Graph")):
            number = caption.split(" ", 1)[0] if caption.startswith("#") else "original"
            self.tabs.setTabText(index, f"{name} ({number})")
            self.tabs.setTabToolTip(index, f"{name} shows {caption}")
        self._update_classify(shown.compressed)
        if self.tabs.currentIndex() == 2:
            self._refresh_graph()
        if shown.rebuilt:
            self.show_message(f"Showing {caption}: rebuilt from its recipe (its file had been evicted "
                              "from the point store) and stored again.")
        self.point_status.refresh()

    def _current_compressed(self) -> Any:
        """The highlighted point's model if it is at hand (shown, or in memory), else None."""
        current = self.session.experiments.find(self.plot.current_id or "") if self.plot is not None else None
        if current is None or current.is_original:
            return None
        if self.shown_point is not None and self.shown_point.experiment.id == current.id:
            return self.shown_point.compressed
        return current.compressed if current.compressed is not None else self.session.points.cached(current)

    def _refresh_graph(self) -> None:
        """Export the original and the current result to ONNX (in a worker) for the graph tab."""
        handle = self.session.handle
        if self.graph_view is None or handle is None:
            return
        compressed = self._current_compressed()
        key = (id(handle), id(compressed))
        if key == self._graph_key:
            return
        self._graph_key = key
        folder = Path(self._temp.name)

        def export(progress: Any = None, cancel: Any = None) -> tuple[Path, Optional[Path]]:
            from squeezestudio.core.io.export_onnx import export_onnx
            original = folder / f"original_{key[0]}.onnx"
            if not original.exists():
                export_onnx(handle, original)
            if compressed is None:
                return original, None
            target = folder / f"compressed_{key[1]}.onnx"
            export_onnx(compressed.handle, target)
            return original, target

        def failed(message: str, details: str) -> None:
            self._graph_key = None

        self.jobs.start("graph", export, on_finished=lambda paths: self.graph_view.set_models(*paths),
                        on_failed=failed)

    def _update_classify(self, compressed: Any) -> None:
        """Classify with the original and ``compressed`` (the shown point's CompressedModel, or None)."""
        handle = self.session.handle
        if self.classify_view is None or handle is None:
            return
        try:
            from squeezestudio.core.data.dataset import PreprocessSpec
            models = {"original": handle.module}
            if compressed is not None:
                models["compressed"] = compressed.handle.module
            self.classify_view.set_models(models, PreprocessSpec.from_input_spec(handle.input_spec),
                                          handle.class_names)
        except Exception as exc:  # noqa: BLE001
            self.show_message(f"The classify view could not take the models: {exc}")

    # -- user actions ----------------------------------------------------------
    def _controls_changed(self, recipe: dict) -> None:
        if self.stages is not None:  # the controls edit one stage; the list holds the others
            recipe = self.stages.combined(recipe)
        self.session.set_recipe(recipe_from_dict(recipe))
        self.runner.evaluate(self.session.recipe)

    def apply_recipe(self, recipe: Any) -> None:
        """Make ``recipe`` (a Recipe or its dict) current (the controls follow) and evaluate it as a new point."""
        self.session.set_recipe(recipe_from_dict(recipe) if isinstance(recipe, dict) else recipe)
        self.runner.evaluate(self.session.recipe)

    def restore_point(self, experiment_id: str) -> None:
        """Clicking a point: its recipe in the controls, its exact stored model in every view."""
        experiment = self.session.restore_experiment(experiment_id)
        if self.plot is not None:
            self.plot.set_current(experiment.id)
        self.jobs.cancel("evaluate")
        self.runner.inspect(experiment)

    def evaluate_now(self) -> None:
        if self.controls is not None:
            self.controls.flush()
        self.runner.evaluate_original()
        self.runner.evaluate(self.session.recipe)

    def ask_run_on_cluster(self) -> None:
        from squeezestudio.gui.qt_cluster_dialog import show_cluster_dialog
        show_cluster_dialog(self)

    def ask_search(self) -> None:
        from squeezestudio.gui.qt_search_dialog import open_search_dialog

        open_search_dialog(self)

    def ask_latency(self) -> None:
        from squeezestudio.gui.qt_latency_action import measure_point_latency

        measure_point_latency(self)

    def undo(self) -> None:
        if self.session.undo():
            self.runner.evaluate(self.session.recipe)

    def redo(self) -> None:
        if self.session.redo():
            self.runner.evaluate(self.session.recipe)

    def cancel_jobs(self) -> None:
        self.jobs.cancel()

    def open_model(self, path: str, *, trust: bool = False, confirmed: bool = False, options: Any = None) -> None:
        if not confirmed and not self.confirm_discard("open another model"):
            return
        self.runner.open_model(str(path), trust=trust, options=options)

    def confirm_discard(self, doing: str) -> bool:
        """Ask before ``doing`` drops experiments that were never saved; True to go on."""
        s = self.session
        unsaved = s.unsaved and any(not e.is_original for e in s.experiments.list())
        if not unsaved:
            return True
        count = sum(1 for e in s.experiments.list() if not e.is_original)
        return self.ask_yes_no("Unsaved experiments",
                               f"This session has {count} experiment(s) that are not saved in a project. "
                               f"Discard them and {doing}? (File > Save project keeps them.)")

    def ask_yes_no(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this to answer it)."""
        from PySide6.QtWidgets import QMessageBox
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def open_data(self, source: str) -> None:
        self.runner.open_data(source)

    def open_digits(self) -> None:
        self.open_data("digits")

    def _ask_trust(self, request: NeedsTrust) -> None:
        if ask_trust(self, request.path, request.reason):
            self.open_model(request.path, trust=True, confirmed=True, options=request.options)
        else:
            self.show_message("Not opened: the file was not trusted.")

    # -- status, settings, drag and drop ----------------------------------------
    def show_message(self, text: str) -> None:
        """An information line; it clears itself after a while so it never reads as current when stale."""
        self.message_label.setStyleSheet("")
        set_plain_text(self.message_label, text)
        self.message_label.setToolTip("")
        self._message_shown = text
        self.message_timer.start()

    def _clear_stale_message(self) -> None:
        if self.message_label.text() == getattr(self, "_message_shown", None):
            self.message_label.setText("")

    def show_error(self, message: str, details: str = "") -> None:
        self.last_error = (message, details)
        self.message_label.setStyleSheet("color: #c0392b;")
        set_plain_text(self.message_label, message)
        self.message_label.setToolTip(printable(details[-3000:] if details else message, 3000))

    def _remember(self, path: str) -> None:
        self.settings.add_recent(path)
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        def clear() -> None:
            self.settings.clear_recent()
            self._refresh_recent()
        fill_recent_menu(self.window_actions.recent_menu, self.settings.recent_files(), self.open_path, clear)

    def open_path(self, path: str) -> None:
        """Open a model or a project, by its file name."""
        if path.endswith(".sqproj"):
            self.open_project(path)
        else:
            self.open_model(path)

    def _restore_geometry(self) -> None:
        geometry, state = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry) or self.width() < 900 or self.height() < 600:
            # First start, or a remembered size too small to show the plot and the controls.
            screen = self.screen().availableGeometry() if self.screen() is not None else None
            width = 1280 if screen is None else min(1280, screen.width())
            height = 820 if screen is None else min(820, screen.height())
            self.resize(width, height)
        if state is None or not self.restoreState(state):
            self.resizeDocks([self.controls_dock], [420], Qt.Orientation.Horizontal)
            self.resizeDocks([self.layers_dock], [300], Qt.Orientation.Vertical)

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802
        urls = event.mimeData().urls() if event.mimeData() is not None else []
        if any(u.isLocalFile() for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: Any) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.settings.set_geometry(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.autosave()
        self.settings.set_clean_exit(time.time())  # after the autosave: nothing to offer next start
        self.settings.sync()
        self.jobs.shutdown(3000)
        if self.graph_view is not None and hasattr(self.graph_view, "shutdown"):
            self.graph_view.shutdown()
        self._temp.cleanup()
        super().closeEvent(event)
