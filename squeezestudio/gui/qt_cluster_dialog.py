"""Run on cluster...: send a sweep over the current recipe to Ray; its points join the plot as they arrive.

The dialog only collects where to run (an address, ``local`` for a Ray
instance on this machine, and how many workers) and the grid; the work is the
core's :func:`~squeezestudio.core.cluster.ray_sweep.run_sweep_on_ray`, run as
one job of the window's :class:`~squeezestudio.gui.qt_worker.JobManager`, so
the status bar's Cancel (Esc) and the dialog's Cancel both stop it -- and stop
every outstanding Ray task. The Ray connection is kept between runs (workers
stay warm) and closed with the dialog. The sweep is measured on the images
interactive points are measured on (the session's fixed subset), and its
points say so, so they compare with the rest of the plot.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (QDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from squeezestudio.core.session.interactive_subset import on_images
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_kept_connection import KeptConnection
from squeezestudio.gui.qt_worker import JobManager

JOB = "cluster"
DEFAULT_GRID = "prune.sparsity=0.5,0.7,0.9\ncluster.bits=none,4,6"


class _Arrivals(QObject):
    """Carries experiments from the job's thread to the GUI thread (a queued signal)."""

    experiment = Signal(object)


class QtClusterDialog(QDialog):
    """Address, workers and grid; Run, Cancel; a progress bar and a line of status."""

    def __init__(self, session: StudioSession, jobs: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run on cluster")
        self.session, self.jobs = session, jobs
        self.kept = KeptConnection()
        self.received = 0
        self._measuring: Any = None  # the data set the running sweep measures on
        self.address = QLineEdit("local")
        self.address.setToolTip("'local' starts Ray on this machine; HOST:PORT joins a cluster started with "
                                "'ray start --head' (every machine needs squeezestudio[cluster] installed)")
        self.workers = QSpinBox()
        self.workers.setRange(1, 4096)
        self.workers.setValue(os.cpu_count() or 1)
        self.workers.setToolTip("Points measured at once (with 'local': the CPUs Ray may use)")
        self.grid = QPlainTextEdit(DEFAULT_GRID)
        self.grid.setToolTip("One swept option per line, METHOD.OPTION=V1,V2,... ('none' leaves the method "
                             "out); every combination is applied on top of the current recipe")
        self.grid.setMinimumHeight(80)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Each combination is measured as a Ray task; points appear on the plot as "
                             "they arrive.")
        self.status.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(lambda: self.jobs.cancel(JOB))
        close.clicked.connect(self.close)
        form = QFormLayout()
        form.addRow("Ray address", self.address)
        form.addRow("Workers", self.workers)
        form.addRow("Grid over the\ncurrent recipe", self.grid)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.run_button, self.cancel_button, close):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._arrivals = _Arrivals(self)
        self._arrivals.experiment.connect(self._add)
        self.resize(520, 320)

    # -- running ---------------------------------------------------------------
    def points(self) -> list:
        """The grid's ``(label, recipe)`` points over the current recipe (a RecipeError if unreadable)."""
        from squeezestudio.core.measure.sweep import grid_recipes, parse_grid_axis

        lines = [line.strip() for line in self.grid.toPlainText().splitlines() if line.strip()]
        return grid_recipes([parse_grid_axis(line) for line in lines], self.session.recipe)

    def run(self) -> None:
        """Start the sweep on the cluster (one job; a running one is superseded)."""
        from squeezestudio.core.cluster.connection import ClusterTarget
        from squeezestudio.core.errors import SqueezeStudioError

        handle, data = self.session.handle, self.session.data
        if handle is None or data is None:
            self._say("Open a model and a data set first.")
            return
        try:
            points = self.points()
            target = ClusterTarget(self.address.text().strip(), workers=self.workers.value())
        except SqueezeStudioError as exc:
            self._say(str(exc))
            return
        self.received = 0
        session = self.session
        skip_original = session.current_original() is not None  # measured on these images already
        registry, images = session.registry, session.interactive_images()
        self._measuring = data

        def job(progress: Any = None, cancel: Any = None) -> Any:
            from squeezestudio.core.cluster.arrivals import arrival_experiment
            from squeezestudio.core.cluster.ray_sweep import run_sweep_on_ray
            from squeezestudio.core.session.interactive_subset import image_metrics

            conn = self.kept.get(target)
            subset = session.interactive_data(images, data)
            counts = image_metrics(subset, data)

            def arrived(arrival: Any) -> None:
                if arrival.index == 0 and skip_original:
                    return
                experiment = arrival_experiment(arrival, registry=registry, counts=counts)
                if experiment is not None:
                    self._arrivals.experiment.emit(experiment)

            return run_sweep_on_ray(conn, handle, subset, points, on_point=arrived, progress=progress,
                                    cancel=cancel)

        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._say(f"Sending {len(points) + 1} points to {target.address}, measured "
                  f"{on_images(int(images or len(data)), len(data))}…")
        started = self.jobs.start(JOB, job, on_finished=self._finished, on_failed=self._failed,
                                  on_cancelled=lambda: self._done("Cancelled: no task is left running."))
        started.signals.progress.connect(self._progress)

    # -- results (GUI thread) -------------------------------------------------------
    def _add(self, experiment: Any) -> None:
        if self.session.data is not self._measuring:
            return  # another data set was opened meanwhile: this point is not about it
        self.session.add_experiment(experiment)
        self.received += 1

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        self.status.setText(message)

    def _finished(self, result: Any) -> None:
        failed = "; ".join(f"{f.label}: {f.reason}" for f in result.failed)
        self.progress.setValue(1000)
        self._done(f"{len(result.rows)} point(s) measured on the cluster" +
                   (f"; {len(result.failed)} failed ({failed})" if failed else "."))

    def _failed(self, message: str, details: str) -> None:
        self._done(message)

    def _done(self, text: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._say(text)

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt naming
        """Stop a running sweep; the Ray instance this dialog started goes with it."""
        self.jobs.cancel(JOB)
        job = self.jobs.current(JOB)
        if job is None:
            self.kept.close()
        super().closeEvent(event)


def show_cluster_dialog(window: Any) -> QtClusterDialog:
    """Open (or raise) the window's cluster dialog; it is not modal, so the plot stays usable."""
    dialog = getattr(window, "cluster_dialog", None)
    if dialog is None:
        dialog = QtClusterDialog(window.session, window.jobs, window)
        window.cluster_dialog = dialog
    dialog.show()
    dialog.raise_()
    return dialog
