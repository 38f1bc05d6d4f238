"""The bar above the tabs that says what to do next with the open model.

A model opened without data (``squeezestudio MODEL``, a dropped file) can
be inspected but nothing can be measured, and a plot that stays empty does
not say why. Right after the model opens, this bar says so in the window
and offers the next step: open a data set; "Use the digits" when the
built-in 8x8 digits fit the model (10 outputs, an input they can be resized
to: :func:`~squeezestudio.core.session.model_input.digits_fit`); and the
Model input dialog when the file did not say how its images are prepared.
It follows the session's events and hides once data is open and the
preprocessing is known (or when closed).
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QPushButton, QToolButton

from squeezestudio.core.model.input_spec import NORMALISATION_FLAGS, SIZE_FLAGS
from squeezestudio.core.session.model_input import digits_fit
from squeezestudio.gui.qt_safe_text import set_plain_text

NO_DATA = ("No data set is open, so nothing is measured yet: open one (File > Open data) to measure "
           "accuracy against size.")
DIGITS_FIT = " The built-in handwritten digits fit this model (10 outputs; 8x8 images resized to {size})."
GUESSED = (" The file does not say how its images are prepared, so the input was guessed ({spec}); "
           "check it with the Model input button (also in the File menu).")


def guessed_preprocessing(handle: Any) -> bool:
    """Whether the loader warned that the input size or normalisation was a guess."""
    return any(SIZE_FLAGS in w or NORMALISATION_FLAGS in w for w in getattr(handle, "warnings", None) or [])


def next_step_text(session: Any) -> str:
    """What the bar says for ``session`` ("" when there is nothing to suggest)."""
    handle = session.handle
    if handle is None:
        return ""
    text = ""
    if session.data is None and not session.data_source:
        text = NO_DATA
        if digits_fit(handle.input_spec, len(handle.class_names)):
            text += DIGITS_FIT.format(size=f"{handle.input_spec.height}x{handle.input_spec.width}")
    if guessed_preprocessing(handle):
        text += GUESSED.format(spec=handle.input_spec.describe())
    return text.strip()


class QtNextStepBar(QFrame):
    """A line of advice with the buttons that act on it, over the window's tabs."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        self.window = window
        self.setObjectName("next_step_bar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.digits_button = QPushButton("Use the digits")
        self.digits_button.setToolTip("Evaluate on scikit-learn's built-in handwritten digits (10 classes)")
        self.digits_button.clicked.connect(window.open_digits)
        self.data_button = QToolButton()
        self.data_button.setText("Open data")
        self.data_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.data_button)
        for name in ("open_folder", "open_csv"):
            menu.addAction(window.window_actions[name])
        self.data_button.setMenu(menu)
        self.input_button = QPushButton("Model input…")
        self.input_button.clicked.connect(window.ask_model_input)
        close = QToolButton()
        close.setText("×")
        close.setToolTip("Hide this advice")
        close.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.label, 1)
        for widget in (self.digits_button, self.data_button, self.input_button, close):
            row.addWidget(widget)
        self._dismissed_for: Optional[int] = None
        session = window.session
        for event in (session.events.model, session.events.data):
            event.connect(self._later)
        self.refresh()

    def _later(self, *_: Any) -> None:
        QTimer.singleShot(0, self.refresh)  # session events can come from the loading code

    def dismiss(self) -> None:
        """Hide the bar until another model is opened."""
        self._dismissed_for = id(self.window.session.handle)
        self.hide()

    def refresh(self) -> None:
        session = self.window.session
        handle = session.handle
        text = next_step_text(session)
        if not text or self._dismissed_for == id(handle):
            self.hide()
            return
        set_plain_text(self.label, text)
        no_data = session.data is None and not session.data_source
        self.digits_button.setVisible(no_data and digits_fit(handle.input_spec, len(handle.class_names)))
        self.data_button.setVisible(no_data)
        self.input_button.setVisible(True)
        self.show()


def attach_next_step_bar(window: Any) -> QtNextStepBar:
    """Put the bar above the window's tabs (below an autosave bar, which is inserted at the top)."""
    bar = QtNextStepBar(window)
    window.central_layout.insertWidget(0, bar)
    return bar
