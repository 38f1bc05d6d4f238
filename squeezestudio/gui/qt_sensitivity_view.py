"""Per-layer sensitivity: compress one layer at a time and watch the accuracy.

Deep Compression chose per-layer pruning rates from exactly this kind of scan
(accuracy against sparsity, one curve per layer): layers whose curve stays
flat can be squeezed hard. The scan is a loop of the session's
``evaluate_recipe`` over single-layer recipes, run as one cancellable job.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled
from squeezestudio.core.studio_session import StudioSession
from squeezestudio.gui.qt_worker import JobManager

SCANS = {  # label: (method, knob, values)
    "Pruning sparsity": ("prune", "sparsity", (0.0, 0.3, 0.5, 0.7, 0.8, 0.9)),
    "Clustering bits": ("cluster", "bits", (8, 6, 5, 4, 3, 2)),
    "Quantization bits": ("quantize", "bits", (8, 6, 5, 4, 3, 2)),
}


def single_layer_recipe(layer: str, method: str, knob: str, value: Any) -> dict[str, Any]:
    """A recipe that compresses only ``layer`` with one knob set."""
    return {"version": 1, "methods": {}, "layers": {layer: {method: {knob: value}}}}


def sensitivity_scan(evaluate: Callable[..., Any], layers: Sequence[str], method: str, knob: str,
                     values: Sequence[Any], metric: str = "top1",
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> dict[str, list[Optional[float]]]:
    """``{layer: [metric at each value]}``; ``evaluate(recipe, progress, cancel)`` -> Experiment."""
    curves: dict[str, list[Optional[float]]] = {}
    total = max(1, len(layers) * len(values))
    for i, layer in enumerate(layers):
        curve = []
        for j, value in enumerate(values):
            check(cancel)
            step = i * len(values) + j
            report(progress, step / total, f"{layer}: {knob}={value}")
            experiment = evaluate(single_layer_recipe(layer, method, knob, value),
                                  scaled(progress, step / total, (step + 1) / total), cancel)
            curve.append(experiment.metric(metric))
        curves[layer] = curve
    report(progress, 1.0, "scan finished")
    return curves


class QtSensitivityView(QWidget):
    """Choose a scan, run it in a worker, plot one curve per layer."""

    def __init__(self, session: StudioSession, jobs: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.curves: dict[str, list[Optional[float]]] = {}
        self.scan_combo = QComboBox()
        self.scan_combo.addItems(list(SCANS))
        self.top_n = QSpinBox()
        self.top_n.setRange(1, 200)
        self.top_n.setValue(8)
        self.top_n.setToolTip("Scan only the layers with the most parameters (each layer costs one "
                              "evaluation per value)")
        self.run_button = QPushButton("Run scan")
        self.run_button.clicked.connect(self.run)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(None)
        self.plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.plot.setLabel("left", "Top-1 accuracy (%)")
        row = QHBoxLayout()
        for w in (QLabel("Scan"), self.scan_combo, QLabel("largest layers"), self.top_n):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        layout.addWidget(self.plot, 1)

    def layers_to_scan(self) -> list[str]:
        """The N compressible layers (conv/linear) with the most parameters."""
        module = getattr(self.session.handle, "module", None)
        if module is None:
            return []
        from torch import nn
        sized = [(name, m.weight.numel()) for name, m in module.named_modules()
                 if isinstance(m, (nn.Conv2d, nn.Linear))]
        sized.sort(key=lambda item: -item[1])
        return sorted(name for name, _ in sized[: self.top_n.value()])

    def run(self) -> None:
        method, knob, values = SCANS[self.scan_combo.currentText()]
        layers = self.layers_to_scan()
        if not layers or self.session.data is None:
            return
        session = self.session

        def job(progress: Any = None, cancel: Any = None) -> dict[str, list[Optional[float]]]:
            return sensitivity_scan(session.evaluate_recipe, layers, method, knob, values,
                                    progress=progress, cancel=cancel)

        self.jobs.start("sensitivity", job, on_finished=lambda curves: self.show_curves(curves, knob, values))

    def show_curves(self, curves: dict[str, list[Optional[float]]], knob: str, values: Sequence[Any]) -> None:
        self.curves = curves
        self.plot.clear()
        self.plot.setLabel("bottom", knob)
        x = np.asarray(values, dtype=np.float64)
        for i, (layer, curve) in enumerate(curves.items()):
            y = np.array([np.nan if v is None else v * 100 for v in curve])
            self.plot.plot(x, y, pen=pg.mkPen(pg.intColor(i, hues=max(len(curves), 2)), width=2),
                           symbol="o", symbolSize=5, name=layer)
