"""Run > Measure on all images, and Run > Interactive subset…: the GUI side of the interactive subset.

Interactive points are measured on a fixed stratified subset of the data
(:mod:`squeezestudio.core.session.interactive_subset`, default 1,000 images)
so a slider move answers in about a second. "Measure on all images" measures
the highlighted point again on every image -- and the original, if it was not
yet -- in a worker (progress in the status bar, Esc cancels), as new points
labelled "… (all N images)": the subset's points stay, so the two can be
compared. The subset's size is a setting the window remembers.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QSpinBox, QVBoxLayout, QWidget

from squeezestudio.core.progress import scaled
from squeezestudio.core.session.experiments import Experiment, format_bytes
from squeezestudio.core.session.interactive_subset import full_label, measured_on_all
from squeezestudio.core.session.point_on_all import measure_stored_model, retrained

JOB_KEY = "all_images"
MAX_LIMIT = 10_000_000


def _highlighted(window: Any) -> Optional[Experiment]:
    current = window.plot.current_id if window.plot is not None else None
    return window.session.experiments.find(current or "")


def measure_on_all_images(window: Any) -> bool:
    """Measure the highlighted point (and the original, if needed) on every image; False when nothing to do."""
    session = window.session
    if session.handle is None or session.data is None:
        window.show_message("Open a model and a data set first.")
        return False
    total = len(session.data)
    if session.interactive_images() >= total:
        window.show_message(f"Points are already measured on all {total:,} images.")
        return False
    point = _highlighted(window)
    if point is None:
        window.show_message("Click a point on the plot first: it is the one measured on all images.")
        return False
    done_already = [e for e in session.experiments.list() if measured_on_all(e)]
    need_original = not any(e.is_original for e in done_already)
    if not point.is_original and any(e.recipe == point.recipe for e in done_already if not e.is_original):
        window.show_message(f"{point.label} is already measured on all {total:,} images.")
        return False
    if point.is_original and not need_original:
        window.show_message(f"The original is already measured on all {total:,} images.")
        return False
    handle, data, recipe = session.handle, session.data, (None if point.is_original else dict(point.recipe))
    label = full_label(point.label, total)
    own_model = recipe is not None and session.has_point_model(point) and retrained(recipe)

    def job(progress: Any = None, cancel: Any = None) -> list[Experiment]:
        measured = []
        split = 0.3 if need_original and recipe is not None else 1.0
        if need_original:
            measured.append(session.evaluate_recipe(None, scaled(progress, 0.0, split), cancel, original=True,
                                                    images=total))
        if recipe is not None:
            part = scaled(progress, split if need_original else 0.0, 1.0)
            if own_model:  # retrained: its recipe run again would train another network
                measured.append(measure_stored_model(session, point, total, label=label, progress=part,
                                                     cancel=cancel))
            else:
                measured.append(session.evaluate_recipe(recipe, part, cancel, label=label, images=total))
        return measured

    def finished(measured: list[Experiment]) -> None:
        if session.handle is not handle or session.data is not data:
            return  # another model or data set was opened meanwhile: these numbers are not about it
        for experiment in measured:
            session.add_experiment(experiment)
        last = measured[-1]
        window.runner.experimentReady.emit(last)
        window.runner.inspect(last)  # every view shows the new point, as after any evaluation
        top1 = last.metric("top1")
        accuracy = "" if top1 is None else f", top-1 {top1 * 100:.2f}%"
        window.show_message(f"{last.label}: {format_bytes(last.size_bytes)}{accuracy}")

    def cancelled() -> None:
        window.show_message("Cancelled: no point was measured on all images.")

    window.show_message(f"Measuring {point.label} on all {total:,} images…")
    window.jobs.start(JOB_KEY, job, on_finished=finished, on_cancelled=cancelled)
    return True


class QtSubsetDialog(QDialog):
    """How many images an interactive point is measured on (0: all of them)."""

    def __init__(self, limit: int, total: Optional[int], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Interactive subset")
        self.spin = QSpinBox()
        self.spin.setRange(0, MAX_LIMIT)
        self.spin.setSingleStep(100)
        self.spin.setSuffix(" images")
        self.spin.setSpecialValueText("all images")
        self.spin.setValue(int(limit))
        note = ("" if total is None else f" The current data set has {total:,} images.")
        text = QLabel("Points are measured on a fixed, stratified subset of the data (the same images every "
                      "time, every class in proportion), so each change answers quickly. Run > Measure on all "
                      "images measures a point on everything." + note)
        text.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.spin)
        layout.addWidget(buttons)


def ask_interactive_limit(window: Any) -> QtSubsetDialog:
    """Open the subset dialog (not modal); OK applies and remembers the number."""
    data = window.session.data
    dialog = QtSubsetDialog(window.settings.interactive_limit(), None if data is None else len(data), window)
    dialog.accepted.connect(lambda: set_interactive_limit(window, dialog.spin.value()))
    window.subset_dialog = dialog
    dialog.open()
    return dialog


def set_interactive_limit(window: Any, limit: int) -> None:
    """Measure interactive points on ``limit`` images from now on (0: all), remember it, re-measure the current one."""
    session = window.session
    session.set_interactive_limit(int(limit))
    window.settings.set_interactive_limit(int(limit))
    window.settings.sync()
    images = session.interactive_images()
    if images is None:
        window.show_message("Points will be measured on " + (f"{limit:,} images." if limit else "all images."))
        return
    window.show_message(f"Points are now measured on {images:,} of {len(session.data):,} images.")
    window.runner.evaluate_original()
    if session.recipe is not None:
        window.runner.evaluate(session.recipe)
