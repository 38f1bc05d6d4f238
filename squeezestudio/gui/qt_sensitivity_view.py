"""Per-layer sensitivity: compress one layer at a time and watch the accuracy.

Deep Compression chose per-layer pruning rates from exactly this kind of scan
(accuracy against sparsity, one curve per layer): layers whose curve stays
flat can be squeezed hard. The scan itself is the core's
:func:`~squeezestudio.core.measure.sensitivity.layer_sensitivity` (the same function
``squeezestudio sensitivity`` runs), started here as one cancellable job,
on the images interactive points are measured on (the session's fixed
subset), so its curves and the original's line agree with the plot.
"Apply" turns the scan into settings: for each layer the most aggressive
level costing at most X points (:func:`~squeezestudio.core.measure.sensitivity.recipe_within`),
which becomes the current recipe and a new point on the plot.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox,
                               QVBoxLayout, QWidget)

from squeezestudio.core.session.interactive_subset import on_images
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_worker import JobManager

SCANS = {  # label: (method, axis label, levels)
    "Pruning sparsity": ("prune", "sparsity of the one layer", (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)),
    "Clustering bits": ("cluster", "bits per weight (clustering)", (8, 6, 5, 4, 3, 2)),
    "Quantization bits": ("quantize", "bits per weight (quantization)", (8, 6, 5, 4, 3, 2)),
}


def scan_levels(method: str, levels: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    """``layer_sensitivity`` keyword arguments that scan only ``method`` at ``levels``."""
    return {"prune_levels": tuple(levels) if method == "prune" else (),
            "quant_bits": tuple(levels) if method == "quantize" else (),
            "cluster_bits": tuple(levels) if method == "cluster" else ()}


class QtSensitivityView(QWidget):
    """Choose a scan, run the core's scan in a worker, plot one curve per layer, apply it as a recipe."""

    recipeChosen = Signal(object)  # a Recipe with one override per layer, from "Apply"

    def __init__(self, session: StudioSession, jobs: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.result: Any = None
        self.measured_on = ""  # "on 1,000 of 5,000 images (...)": what the last scan was measured on
        self.method: Optional[str] = None
        self.curves: dict[str, list[tuple[float, Optional[float]]]] = {}
        self.scan_combo = QComboBox()
        self.scan_combo.addItems(list(SCANS))
        self.top_n = QSpinBox()
        self.top_n.setRange(1, 200)
        self.top_n.setValue(8)
        self.top_n.setToolTip("Scan only the layers with the most parameters (each layer costs one "
                              "evaluation per level)")
        self.run_button = QPushButton("Run scan")
        self.run_button.clicked.connect(self.run)
        self.note = QLabel("Compresses one layer at a time and measures the accuracy.")
        # the note gives way (its full text is its tooltip): a long sentence must never widen the window
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.max_drop = QDoubleSpinBox()
        self.max_drop.setRange(0.0, 50.0)
        self.max_drop.setSingleStep(0.5)
        self.max_drop.setValue(1.0)
        self.max_drop.setSuffix(" points")
        self.max_drop.setToolTip("The most top-1 accuracy each layer's setting may cost, in percentage points")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("For each layer, the most aggressive scanned setting that costs at most this "
                                     "many points: a per-layer recipe, evaluated as a new point")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(None)
        self.plot = self.canvas.addPlot(row=0, col=0)
        self.plot.setLabel("left", "Top-1 accuracy (%)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # show the levels themselves, no "x0.001"
        side = self.canvas.addLayout(row=0, col=1)  # the legend's own column: it never covers a curve
        self.legend = pg.LegendItem(labelTextSize="8pt")
        side.addItem(self.legend, row=0, col=0)
        side.addLabel("", row=1, col=0)
        side.layout.setRowStretchFactor(1, 10)
        row = QHBoxLayout()
        for w in (QLabel("Scan"), self.scan_combo, QLabel("largest layers"), self.top_n):
            row.addWidget(w)
        row.addWidget(self.note, 1)
        row.addWidget(self.run_button)
        apply_row = QHBoxLayout()
        for w in (QLabel("Most aggressive setting per layer costing at most"), self.max_drop, self.apply_button):
            apply_row.addWidget(w)
        apply_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        layout.addLayout(apply_row)
        layout.addWidget(self.canvas, 1)

    def _say(self, text: str) -> None:
        self.note.setText(text)
        self.note.setToolTip(text)

    def layers_to_scan(self) -> list[str]:
        """The N compressible layers (conv/linear) with the most parameters, in model order."""
        module = getattr(self.session.handle, "module", None)
        if module is None:
            return []
        from torch import nn
        named = [(name, m.weight.numel()) for name, m in module.named_modules()
                 if isinstance(m, (nn.Conv2d, nn.Linear))]
        largest = {name for name, _ in sorted(named, key=lambda item: -item[1])[: self.top_n.value()]}
        return [name for name, _ in named if name in largest]

    def run(self) -> None:
        """Start the scan chosen in the combo box (superseding a running one)."""
        from squeezestudio.core.measure.sensitivity import layer_sensitivity

        method, axis, levels = SCANS[self.scan_combo.currentText()]
        handle, data, registry = self.session.handle, self.session.data, self.session.registry
        layers = self.layers_to_scan()
        if not layers or data is None:
            self._say("Open a model and a data set first.")
            return
        kwargs = scan_levels(method, levels)
        session, images = self.session, self.session.interactive_images()
        measured_on = on_images(int(images or len(data)), len(data), explain=False)

        def job(progress: Any = None, cancel: Any = None) -> Any:
            subset = session.interactive_data(images, data)  # the interactive points' images
            return layer_sensitivity(handle, subset, registry=registry, layers=layers, progress=progress,
                                     cancel=cancel, **kwargs)

        def finished(result: Any) -> None:
            self.measured_on = measured_on
            self.show_result(result, method, axis)

        self._say(f"Scanning {len(layers)} layer(s) at {len(levels)} levels {measured_on}…")
        self.jobs.start("sensitivity", job, on_finished=finished,
                        on_failed=lambda message, details: self._say(message),
                        on_cancelled=lambda: self._say("Scan cancelled."))

    def show_result(self, result: Any, method: str, axis: str = "") -> None:
        """Draw ``result``'s curves for ``method`` and the original's accuracy as a dashed line."""
        self.result, self.method = result, method
        self.curves = result.curves(method)
        self.plot.clear()
        self.legend.clear()
        self.apply_button.setEnabled(result.baseline_top1 is not None and bool(self.curves))
        self.plot.setLabel("bottom", axis or method)
        levels = sorted({level for points in self.curves.values() for level, _ in points})
        self.plot.getAxis("bottom").setTicks([[(level, f"{level:g}") for level in levels]])
        if method != "prune":
            self.plot.invertX(True)  # fewer bits = more compression, to the right
        else:
            self.plot.invertX(False)
        for i, (layer, points) in enumerate(self.curves.items()):
            x = np.array([level for level, _ in points], dtype=np.float64)
            y = np.array([np.nan if v is None else v * 100 for _, v in points], dtype=np.float64)
            curve = self.plot.plot(x, y, pen=pg.mkPen(pg.intColor(i, hues=max(len(self.curves), 2)), width=2),
                                   symbol="o", symbolSize=5)
            self.legend.addItem(curve, layer)
        if result.baseline_top1 is not None:
            line = pg.InfiniteLine(pos=result.baseline_top1 * 100, angle=0,
                                   pen=pg.mkPen("#555", width=1, style=pg.QtCore.Qt.PenStyle.DashLine),
                                   label="original", labelOpts={"position": 0.05, "color": "#555"})
            self.plot.addItem(line)
            on = f" {self.measured_on}" if self.measured_on else ""
            self._say(f"Original top-1 {result.baseline_top1 * 100:.1f}%{on}; each curve compresses "
                              "only that layer.")

    def apply(self) -> Optional[Any]:
        """Emit the per-layer recipe "most aggressive level costing <= X points" (None with a note if none)."""
        from squeezestudio.core.errors import SqueezeStudioError
        from squeezestudio.core.measure.sensitivity import recipe_within

        if self.result is None or self.method is None:
            return None
        try:
            recipe = recipe_within(self.result, self.method, self.max_drop.value())
        except SqueezeStudioError as exc:
            self._say(str(exc))
            return None
        self._say(f"Applied: {len(recipe.layers)} layer(s) set by the scan; evaluating it as a new point.")
        self.recipeChosen.emit(recipe)
        return recipe
