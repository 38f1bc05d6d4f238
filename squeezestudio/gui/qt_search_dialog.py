"""Run > Find the best model under…: the byte-budget search, run in a worker, its result put on the plot.

The dialog asks for a goal (a byte budget or a largest top-1 drop) and
optional retraining, runs :func:`~squeezestudio.core.search.budget_search.search_budget`
off the GUI thread with progress and cancel, and adds the final measured
point (exact .sqz bytes, accuracy on the images interactive points are
measured on, so it compares with them; it carries that count) to the session.
Choices are made on a held-out part of the training data, never on the
images the point is reported on; the per-layer
table is kept for the model and training data, so a second search at
another budget reuses it. "Measure on a Ray cluster" sends the table's cells
and the candidate recipes to Ray as tasks (the same core functions; the
same choice as a local search), keeping the connection between searches.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QRadioButton,
                               QSpinBox, QVBoxLayout, QWidget)

from squeezestudio.core.session.experiments import Experiment, new_experiment_id
from squeezestudio.core.session.interactive_subset import image_metrics, on_images
from squeezestudio.gui.qt_kept_connection import KeptConnection
from squeezestudio.gui.qt_worker import JobManager

JOB_KEY = "search"


class QtSearchDialog(QDialog):
    """Goal, retraining, Start/Cancel, progress and the per-layer choice of the last search."""

    experimentFound = Signal(object)

    def __init__(self, session: Any, jobs: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Find the best model under…")
        self.session, self.jobs = session, jobs
        self._tables: dict[Any, Any] = {}
        self.settings_grid: Any = None  # the per-layer settings tried (None: the core's default grid)
        self.last_result: Any = None
        self.budget_radio = QRadioButton("File size at most")
        self.drop_radio = QRadioButton("Top-1 drop at most")
        self.budget_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.budget_radio)
        group.addButton(self.drop_radio)
        self.budget = QSpinBox()
        self.budget.setRange(1, 2 ** 31 - 1)
        self.budget.setSingleStep(1000)
        self.budget.setSuffix(" bytes")
        self.budget.setGroupSeparatorShown(True)
        self.drop = QDoubleSpinBox()
        self.drop.setRange(0.0, 100.0)
        self.drop.setValue(1.0)
        self.drop.setSuffix(" points")
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 200)
        self.epochs.setSuffix(" epochs")
        self.epochs.setToolTip("Retrain the chosen recipe before it is measured (0: no retraining)")
        form = QFormLayout()
        form.addRow(self.budget_radio, self.budget)
        form.addRow(self.drop_radio, self.drop)
        form.addRow("Retrain the result", self.epochs)
        self.on_cluster = QCheckBox("Measure on a Ray cluster")
        self.on_cluster.setToolTip("The per-layer table and the candidate recipes become Ray tasks; the "
                                   "choice is the same as on this machine")
        self.address = QLineEdit("local")
        self.address.setToolTip("'local' starts Ray on this machine; HOST:PORT joins a cluster started with "
                                "'ray start --head'")
        self.workers = QSpinBox()
        self.workers.setRange(1, 4096)
        self.workers.setValue(os.cpu_count() or 1)
        self.workers.setToolTip("Measurements at once (with 'local': the CPUs Ray may use)")
        for widget in (self.address, self.workers):
            widget.setEnabled(False)
            self.on_cluster.toggled.connect(widget.setEnabled)
        cluster_row = QHBoxLayout()
        cluster_row.addWidget(self.address, 1)
        cluster_row.addWidget(QLabel("workers"))
        cluster_row.addWidget(self.workers)
        form.addRow(self.on_cluster, cluster_row)
        self.kept = KeptConnection()
        note = QLabel("Every choice is made on a held-out part of the training data; the result is then "
                      "measured on the images the plot's points are measured on (Run > Interactive subset…) "
                      "and appears on the plot.")
        note.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMinimumHeight(160)
        self.start_button = QPushButton("Search")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel search")
        self.cancel_button.setEnabled(False)
        close_button = QPushButton("Close")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, close_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        self.resize(620, 460)
        self.jobs.progress.connect(self._progressed)
        self._suggest_budget()

    def _suggest_budget(self) -> None:
        """Start from a quarter of the original's .sqz size when it has been measured."""
        original = next((e for e in self.session.experiments if e.is_original), None)
        if original is not None and original.size_bytes:
            self.budget.setValue(max(1, int(original.size_bytes) // 4))

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def start(self) -> None:
        """Run the search in a worker (a sentence in the status line if the window lacks model or data)."""
        session = self.session
        handle, data = session.handle, session.data
        if handle is None or data is None:
            self.status.setText("Open a model and a data set first.")
            return
        source = session.training_source()
        if source is None:
            self.status.setText("The search chooses on held-out training images: open training data "
                                "(File > Open data > Open training data…) first.")
            return
        budget = int(self.budget.value()) if self.budget_radio.isChecked() else None
        drop = None if budget is not None else float(self.drop.value())
        epochs = int(self.epochs.value())
        finetune = {"epochs": epochs, "shift_augment": 1} if epochs else None
        grid = self.settings_grid
        key = (id(handle.module), source, None if grid is None else tuple(grid))
        table = self._tables.get(key)
        target = self._cluster_target()
        if target is False:
            return

        images = session.interactive_images()

        def job(progress: Any = None, cancel: Any = None) -> Any:
            from squeezestudio.core.search.budget_search import search_budget

            measurer = None
            if target is not None:
                from squeezestudio.core.cluster.ray_search import RaySearchMeasurer  # lazy: Ray is optional

                measurer = RaySearchMeasurer(self.kept.get(target))
            train = session.training_data(handle)
            # Reported on the interactive points' images (validation data, never looked at while choosing):
            # the point compares like with like with the rest of the plot.
            report = session.interactive_data(images, data)
            result = search_budget(handle, train, registry=session.registry, budget_bytes=budget, max_drop=drop,
                                   report_data=report, table=table, settings=grid, finetune=finetune,
                                   measurer=measurer, progress=progress, cancel=cancel)
            return result, image_metrics(report, data)

        def done(found: Any) -> None:
            result, counts = found
            self._tables[key] = result.table
            self._set_running(False)
            if session.handle is not handle or session.data is not data:
                self.status.setText("Another model or data set was opened during the search; its point was "
                                    "not added.")
                return
            self._show(result, budget, drop, counts)

        def failed(message: str, details: str) -> None:
            self._set_running(False)
            self.status.setText(message)

        def cancelled() -> None:
            self._set_running(False)
            self.status.setText("Search cancelled; nothing was added to the plot.")

        self._set_running(True)
        self.details.clear()
        self.jobs.start(JOB_KEY, job, on_finished=done, on_failed=failed, on_cancelled=cancelled)

    def _cluster_target(self) -> Any:
        """The Ray target when "Measure on a Ray cluster" is ticked, None when not, False (said) when invalid."""
        if not self.on_cluster.isChecked():
            return None
        from squeezestudio.core.cluster.connection import ClusterTarget
        from squeezestudio.core.errors import SqueezeStudioError

        try:
            return ClusterTarget(self.address.text().strip(), workers=self.workers.value())
        except SqueezeStudioError as exc:
            self.status.setText(str(exc))
            return False

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        """A running search goes on (its point still arrives); an idle dialog lets go of its Ray instance."""
        if self.jobs.current(JOB_KEY) is None:
            self.kept.close()
        super().closeEvent(event)

    def _progressed(self, fraction: float, message: str) -> None:
        if self.jobs.current(JOB_KEY) is not None:  # the manager reports every job; show only the search's
            self.progress.setValue(int(fraction * 1000))
            self.status.setText(message)

    def cancel(self) -> None:
        self.jobs.cancel(JOB_KEY)

    def _show(self, result: Any, budget: Optional[int], drop: Optional[float], counts: dict[str, float]) -> None:
        from squeezestudio.core.compression.recipe import recipe_to_dict

        self.last_result = result
        final = result.final
        goal = f"≤ {budget:,d} B" if budget is not None else f"drop ≤ {drop:g} pt"
        experiment = Experiment(id=new_experiment_id(), recipe=recipe_to_dict(result.recipe),
                                label=f"search {goal}", size_bytes=int(final.size_bytes),
                                metrics={**final.metrics(), **counts}, compressed=final.compressed)
        self.session.add_experiment(experiment)
        self.experimentFound.emit(experiment)
        top1 = final.evaluation.top1 if final.evaluation is not None else None
        accuracy = "" if top1 is None else f", top-1 {top1 * 100:.2f}%"
        self.progress.setValue(1000)
        measured = on_images(int(counts["images"]), int(counts["images_total"]), explain=False)
        self.status.setText(f"Found: {final.size_bytes:,d} bytes{accuracy} {measured} of "
                            f"{self.session.data.name} ({len(result.candidates)} recipes measured in "
                            f"{result.seconds:.1f} s).")
        self.details.setPlainText("\n".join(result.choice_lines()))


def open_search_dialog(window: Any) -> QtSearchDialog:
    """The window's one search dialog (kept, with its table cache), shown non-modally."""
    dialog = getattr(window, "search_dialog", None)
    if dialog is None:
        dialog = QtSearchDialog(window.session, window.jobs, window)
        dialog.experimentFound.connect(window.runner.experimentReady.emit)
        window.search_dialog = dialog
    dialog.show()
    dialog.raise_()
    return dialog
