"""One editor widget per method knob, generated from its :class:`ParamSpec`.

float -> slider + spin box, int -> spin box, bool -> check box, choice ->
combo box, str -> line edit. An optional knob (None allowed) gets a check box
in front: unticked means "not set". Every editor has ``value()``,
``set_value()`` and a ``changed`` signal, so the method panel can treat them
alike and a plugin's config gets controls for free.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLineEdit, QSlider,
                               QSpinBox, QWidget)

from squeezestudio.core.compression.config import ParamSpec

SLIDER_STEPS = 1000
UNBOUNDED = 1e9


class QtParamEditor(QWidget):
    """Edits one config value; emits ``changed`` when the user changes it."""

    changed = Signal()

    def __init__(self, spec: ParamSpec, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self._quiet = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.set_box: Optional[QCheckBox] = None
        if spec.optional:
            self.set_box = QCheckBox()
            self.set_box.setToolTip("Tick to set this option; unticked leaves it unset")
            self.set_box.toggled.connect(self._set_toggled)
            layout.addWidget(self.set_box)
        self.slider: Optional[QSlider] = None
        self.editor = self._build(layout)
        self.setToolTip(spec.help)
        self.set_value(spec.default)

    # -- construction ---------------------------------------------------
    def _build(self, layout: QHBoxLayout) -> QWidget:
        spec = self.spec
        low = spec.minimum if spec.minimum is not None else -UNBOUNDED
        high = spec.maximum if spec.maximum is not None else UNBOUNDED
        if spec.kind == "float":
            box = QDoubleSpinBox()
            box.setDecimals(4)
            box.setRange(low, high)
            box.setSingleStep(0.01 if high - low <= 10 else 0.1)
            if spec.minimum is not None and spec.maximum is not None:
                self.slider = QSlider(Qt.Orientation.Horizontal)
                self.slider.setRange(0, SLIDER_STEPS)
                self.slider.valueChanged.connect(self._slider_moved)
                layout.addWidget(self.slider, 1)
            box.valueChanged.connect(self._spin_changed)
        elif spec.kind == "int":
            box = QSpinBox()
            box.setRange(int(max(low, -2**31 + 1)), int(min(high, 2**31 - 1)))
            box.valueChanged.connect(self._emit)
        elif spec.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(self._emit)
        elif spec.kind == "choice":
            box = QComboBox()
            for choice in spec.choices:
                box.addItem(str(choice), choice)
            box.currentIndexChanged.connect(self._emit)
        else:
            box = QLineEdit()
            box.editingFinished.connect(self._emit)
        layout.addWidget(box, 0 if self.slider is not None else 1)
        return box

    # -- value ----------------------------------------------------------
    def value(self) -> Any:
        if self.set_box is not None and not self.set_box.isChecked():
            return None
        box, kind = self.editor, self.spec.kind
        if kind == "float":
            return float(box.value())
        if kind == "int":
            return int(box.value())
        if kind == "bool":
            return bool(box.isChecked())
        if kind == "choice":
            return box.currentData()
        return box.text()

    def set_value(self, value: Any) -> None:
        """Show ``value`` without emitting ``changed``."""
        self._quiet = True
        try:
            if self.set_box is not None:
                self.set_box.setChecked(value is not None)
                self.editor.setEnabled(value is not None)
                if self.slider is not None:
                    self.slider.setEnabled(value is not None)
            if value is None:
                return
            box, kind = self.editor, self.spec.kind
            if kind in ("float", "int"):
                box.setValue(value)
                self._sync_slider()
            elif kind == "bool":
                box.setChecked(bool(value))
            elif kind == "choice":
                index = box.findData(value)
                box.setCurrentIndex(index if index >= 0 else box.findText(str(value)))
            else:
                box.setText(str(value))
        finally:
            self._quiet = False

    # -- internal wiring ------------------------------------------------
    def _emit(self, *_: Any) -> None:
        if not self._quiet:
            self.changed.emit()

    def _set_toggled(self, on: bool) -> None:
        self.editor.setEnabled(on)
        if self.slider is not None:
            self.slider.setEnabled(on)
        self._emit()

    def _sync_slider(self) -> None:
        if self.slider is None:
            return
        low, high = float(self.spec.minimum), float(self.spec.maximum)
        position = 0 if high <= low else round((self.editor.value() - low) / (high - low) * SLIDER_STEPS)
        self.slider.blockSignals(True)
        self.slider.setValue(int(position))
        self.slider.blockSignals(False)

    def _slider_moved(self, position: int) -> None:
        low, high = float(self.spec.minimum), float(self.spec.maximum)
        self.editor.setValue(low + (high - low) * position / SLIDER_STEPS)

    def _spin_changed(self, _value: float) -> None:
        self._sync_slider()
        self._emit()
