"""The "Retraining" group of the Compression dock: the recipe's ``finetune`` section as controls.

Deep Compression retrains after compressing; here that is part of a
configuration: epochs (0 = off), learning rate and optional distillation from
the original model. The group edits a plain dict (the fields of
:class:`~squeezestudio.core.training.loop.TrainConfig`), emits ``changed`` on every
user edit, and keeps options it has no control for (``seed``, ``fraction``...
from a loaded recipe) so they survive a round trip. A note under the knobs
says what retraining trains on, or that a training set must be opened.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QLabel,
                               QMenu, QSpinBox, QToolButton, QWidget)

from squeezestudio.core.training.retrain_defaults import RETRAIN_DEFAULTS, retrain_section

SHOWN_KEYS = ("epochs", "lr", "distill_temperature", "distill_alpha")

TIPS = {
    "epochs": "Fine-tunes the compressed model on the training split for this many epochs, keeping pruned "
              "weights at zero and clustered weights shared (Deep Compression's retraining); 0 turns it off.",
    "lr": "Learning rate of the retraining optimizer (Adam); small values keep the model near its start.",
    "distill": "Trains the compressed model to match the original model's softened outputs as well as the labels.",
    "temperature": "Softens both models' outputs before matching them; higher values pass on more of the "
                   "original's ranking of the wrong classes.",
    "alpha": "Weight of the match to the original model against the labels (1 = only the original's outputs).",
    "open": "Opens a folder or CSV list of labelled images to retrain on, kept apart from the evaluation data.",
}


def retraining_note(session: Any) -> str:
    """One sentence: what retraining trains on, or what the user must open first."""
    source = session.training_source() if session is not None else None
    if source is None:
        return "Retraining needs a training set apart from the evaluation data: open one below."
    evaluated = getattr(session, "data_source", None) or "the evaluation data"
    return f"Retrains on {source}; accuracy is measured on {evaluated}."


class QtRetrainingControls(QGroupBox):
    """Epochs, learning rate and distillation; ``finetune_dict()`` is the recipe section."""

    changed = Signal()
    trainingDataRequested = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Retraining", parent)
        self.setToolTip(TIPS["epochs"])
        self._quiet = False
        self._extra: dict[str, Any] = {}
        form = QFormLayout(self)
        form.setContentsMargins(6, 4, 6, 4)
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 1000)
        self.epochs.setSpecialValueText("off")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(RETRAIN_DEFAULTS.lr)
        self.distill = QCheckBox("from the original model")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.5, 50.0)
        self.temperature.setSingleStep(0.5)
        self.temperature.setValue(RETRAIN_DEFAULTS.distill_temperature)
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setSingleStep(0.05)
        self.alpha.setValue(RETRAIN_DEFAULTS.distill_alpha)
        self.note = QLabel(retraining_note(None))
        self.note.setWordWrap(True)
        self.open_button = QToolButton()
        self.open_button.setText("Open training data…")
        self.open_button.setToolTip(TIPS["open"])
        self.open_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.open_button)
        menu.addAction("Image folder…").triggered.connect(lambda _=False: self.ask_training_data(folder=True))
        menu.addAction("CSV list…").triggered.connect(lambda _=False: self.ask_training_data(folder=False))
        self.open_button.setMenu(menu)
        rows = (("epochs", self.epochs, "epochs"), ("learning rate", self.lr, "lr"),
                ("distillation", self.distill, "distill"), ("temperature", self.temperature, "temperature"),
                ("alpha", self.alpha, "alpha"))
        for text, widget, tip in rows:
            label = QLabel(text)
            label.setToolTip(TIPS[tip])
            widget.setToolTip(TIPS[tip])
            form.addRow(label, widget)
        form.addRow(self.note)
        form.addRow(self.open_button)
        self.epochs.valueChanged.connect(self._edited)
        self.lr.valueChanged.connect(self._edited)
        self.distill.toggled.connect(self._edited)
        self.temperature.valueChanged.connect(self._edited)
        self.alpha.valueChanged.connect(self._edited)
        self._enable()

    # -- recipe section <-> widgets ---------------------------------------
    def finetune_dict(self) -> Optional[dict[str, Any]]:
        """The recipe's ``finetune`` section, or None when retraining is off (0 epochs)."""
        distill = self.distill.isChecked()
        return retrain_section(self.epochs.value(), lr=float(self.lr.value()),
                               distill_temperature=float(self.temperature.value()) if distill else None,
                               distill_alpha=float(self.alpha.value()) if distill else None, extra=self._extra)

    def set_finetune_dict(self, section: Optional[dict[str, Any]]) -> None:
        """Show ``section`` (undo, a clicked point, a loaded recipe) without emitting ``changed``."""
        section = dict(section or {})
        self._quiet = True
        try:
            self.epochs.setValue(int(section.get("epochs") or 0))
            self.lr.setValue(float(section.get("lr") or RETRAIN_DEFAULTS.lr))
            temperature = section.get("distill_temperature")
            self.distill.setChecked(temperature is not None)
            self.temperature.setValue(float(temperature if temperature is not None
                                            else RETRAIN_DEFAULTS.distill_temperature))
            alpha = section.get("distill_alpha")
            self.alpha.setValue(float(alpha if alpha is not None else RETRAIN_DEFAULTS.distill_alpha))
            self._extra = {k: v for k, v in section.items() if k not in SHOWN_KEYS}
        finally:
            self._quiet = False
        self._enable()

    def set_note(self, text: str, *, needs_data: bool = False) -> None:
        """Say what retraining trains on; ``needs_data`` highlights that a training set is missing."""
        self.note.setText(text)
        self.note.setStyleSheet("color: #c0392b;" if needs_data else "color: #555;")

    # -- user actions ---------------------------------------------------------
    def ask_training_data(self, *, folder: bool = True) -> None:
        """Let the user pick a training folder or CSV list; emits ``trainingDataRequested``."""
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Open training images (one sub-folder per class)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Open a training CSV list", "", "CSV lists (*.csv)")
        if path:
            self.trainingDataRequested.emit(path)

    def _enable(self) -> None:
        on = self.epochs.value() > 0
        self.lr.setEnabled(on)
        self.distill.setEnabled(on)
        self.temperature.setEnabled(on and self.distill.isChecked())
        self.alpha.setEnabled(on and self.distill.isChecked())

    def _edited(self, *_: Any) -> None:
        self._enable()
        if not self._quiet:
            self.changed.emit()
