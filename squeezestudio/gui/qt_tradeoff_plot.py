"""The size/accuracy trade-off plot: one point per experiment, Pareto frontier on top.

x is the exact .sqz size on a log axis labelled in B/KB/MB, y the chosen
metric. The original model is a distinct star; the frontier is a step line
(at any size between two frontier points the best you can get is the left
one's accuracy). Hovering shows the recipe, clicking emits the experiment id
so the window can restore that recipe. The plot redraws from the
ExperimentLog's change callbacks and holds no state of its own.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.session.experiments import (Experiment, ExperimentLog, format_bytes, frontier_points,
                                                    pareto_frontier)
from squeezestudio.core.session.experiments import recipe_summary
from squeezestudio.gui.qt_worker import describe_error

METRICS = {"top1": "Top-1 accuracy", "top5": "Top-5 accuracy", "agreement": "Agreement with original"}


class BytesLogAxis(pg.AxisItem):
    """A log-scale axis whose tick labels are byte sizes rather than powers of ten."""

    min_label_spacing = 56  # pixels between two labelled ticks

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - Qt naming
        if not self.logMode:
            return [format_bytes(v) for v in values]
        # Label a tick only where there is room (minor ticks crowd near each decade).
        low, high = self.range
        pixels_per_unit = self.width() / max(high - low, 1e-9)
        labels, last = [], -math.inf
        for v in values:
            if (v - last) * pixels_per_unit >= self.min_label_spacing:
                labels.append(format_bytes(10 ** v))
                last = v
            else:
                labels.append("")
        return labels


class QtTradeoffPlot(QWidget):
    """Scatter of experiments (size vs metric) with the Pareto frontier."""

    pointClicked = Signal(str)

    def __init__(self, log: ExperimentLog, parent: Optional[QWidget] = None, *,
                 defaults: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
        """``defaults``: each method's default knobs, left out of the tooltips' recipe summaries."""
        super().__init__(parent)
        self.log = log
        self.defaults: Mapping[str, Mapping[str, Any]] = defaults or {}
        self.metric_name = "top1"
        self.current_id: Optional[str] = None
        self.frontier_ids: list[str] = []
        self._ids: list[str] = []

        self.combo = QComboBox()
        for key, text in METRICS.items():
            self.combo.addItem(text, key)
        self.combo.setToolTip("Which measured number to plot against size")
        self.combo.currentIndexChanged.connect(lambda _: self.set_metric(self.combo.currentData()))
        self.summary = QLabel("")
        self.summary.setWordWrap(False)
        self.export_button = QToolButton()
        self.export_button.setText("Export…")
        self.export_button.setToolTip("Save the plot as PNG or SVG, or the points as CSV")
        self.export_button.clicked.connect(self._export_dialog)

        self.axis = BytesLogAxis("bottom")
        self.axis.setLogMode(True)
        self.plot = pg.PlotWidget(axisItems={"bottom": self.axis})
        self.plot.setBackground(None)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "Size of the .sqz file")
        self.plot.setMenuEnabled(False)
        self.frontier = pg.PlotDataItem(pen=pg.mkPen((230, 120, 30), width=2))
        self.scatter = pg.ScatterPlotItem(size=10, hoverable=True, tip=self._tip,
                                          hoverSize=14, hoverPen=pg.mkPen("w", width=2))
        self.original = pg.ScatterPlotItem(size=18, symbol="star", pen=pg.mkPen((20, 20, 20)),
                                           brush=pg.mkBrush(250, 200, 40), hoverable=True, tip=self._tip)
        legend = self.plot.addLegend(offset=(-10, -10), labelTextSize="8pt")
        for item in (self.frontier, self.scatter, self.original):
            self.plot.addItem(item)
        legend.addItem(self.scatter, "experiment")
        legend.addItem(self.original, "original model")
        legend.addItem(self.frontier, "Pareto frontier")
        self.scatter.sigClicked.connect(self._clicked)
        self.original.sigClicked.connect(self._clicked)

        top = QHBoxLayout()
        top.addWidget(QLabel("Plot"))
        top.addWidget(self.combo)
        top.addWidget(self.summary, 1)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)

        self.log.on_change.append(self.refresh)
        self.destroyed.connect(lambda *_: self._detach())
        self.refresh()

    def _detach(self) -> None:
        if self.refresh in self.log.on_change:
            self.log.on_change.remove(self.refresh)

    # -- drawing --------------------------------------------------------
    def set_metric(self, metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        self.metric_name = metric
        index = self.combo.findData(metric)
        if index != self.combo.currentIndex():
            self.combo.setCurrentIndex(index)
        self.refresh()

    def set_current(self, experiment_id: Optional[str]) -> None:
        """Mark the experiment whose recipe is current (drawn with a ring)."""
        self.current_id = experiment_id
        self.refresh()

    def plotted(self) -> list[Experiment]:
        """Experiments that have a value for the current metric."""
        return [e for e in self.log if e.metric(self.metric_name) is not None and e.size_bytes > 0]

    def refresh(self) -> None:
        points = self.plotted()
        scale = 100.0
        self.plot.setLabel("left", f"{METRICS[self.metric_name]} (%)")
        idx = pareto_frontier(frontier_points(points, self.metric_name, self.log.chance))  # chance: never optimal
        self.frontier_ids = [points[i].id for i in idx]
        normal = [e for e in points if not e.is_original]
        originals = [e for e in points if e.is_original]
        self.scatter.setData(spots=[self._spot(e, scale) for e in normal])
        self.original.setData(spots=[self._spot(e, scale) for e in originals])
        self._ids = [e.id for e in points]
        xs, ys = self._steps([points[i] for i in idx], scale)
        self.frontier.setData(xs, ys)
        values = [e.metric(self.metric_name) * scale for e in points]
        if values and max(values) - min(values) < 2.0:  # one point (or a few alike): a readable range around it
            middle = (max(values) + min(values)) / 2
            self.plot.setYRange(max(0.0, middle - 5.0), min(100.0, middle + 5.0), padding=0)
        else:
            self.plot.enableAutoRange(axis="y")
        self.summary.setText(self._summary_text(points))

    def _spot(self, e: Experiment, scale: float) -> dict:
        current = e.id == self.current_id
        on_front = e.id in set(self.frontier_ids)
        brush = (60, 130, 220) if not on_front else (230, 120, 30)
        return {"pos": (math.log10(e.size_bytes), e.metric(self.metric_name) * scale), "data": e.id,
                "brush": pg.mkBrush(*brush) if not e.is_original else pg.mkBrush(250, 200, 40),
                "size": (18 if e.is_original else 10) + (6 if current else 0),
                "pen": pg.mkPen((200, 30, 30) if current else (30, 30, 30), width=3 if current else 1)}

    def _steps(self, front: list[Experiment], scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Step-line coordinates through frontier points (sorted by size, rising metric)."""
        if not front:
            return np.zeros(0), np.zeros(0)
        x = np.log10(np.array([e.size_bytes for e in front], dtype=np.float64))
        y = np.array([e.metric(self.metric_name) for e in front], dtype=np.float64) * scale
        xs = np.repeat(x, 2)[1:]
        ys = np.repeat(y, 2)[:-1]
        return xs, ys

    def _summary_text(self, points: list[Experiment]) -> str:
        original = next((e for e in points if e.is_original), None)
        best = [e for e in points if e.id in self.frontier_ids and not e.is_original]
        if original is None or not best:
            return f"{len(points)} point(s)"
        smallest = min(best, key=lambda e: e.size_bytes)
        return (f"{len(points)} points · smallest on frontier: {format_bytes(smallest.size_bytes)} "
                f"({original.size_bytes / smallest.size_bytes:.1f}× smaller)")

    def _tip(self, x: float, y: float, data: object) -> str:
        e = self.log.find(str(data))
        if e is None:
            return ""
        lines = [e.label or "experiment", f"size: {format_bytes(e.size_bytes)} ({e.size_bytes:,} bytes)"]
        for key, text in METRICS.items():
            value = e.metric(key)
            if value is not None:
                lines.append(f"{text}: {value * 100:.2f}%")
        if e.metric("latency") is not None:
            lines.append(f"latency: {e.metric('latency'):.3f} ms/image")
        if not e.is_original:
            lines.append(recipe_summary(e.recipe, self.defaults))
        return "\n".join(lines)

    def _clicked(self, item, points, *args) -> None:
        if len(points):
            self.pointClicked.emit(str(points[0].data()))

    # -- export ---------------------------------------------------------
    def export_png(self, path: str, width: int = 1200) -> int:
        """Save the plot as a PNG image; returns bytes written."""
        from pyqtgraph.exporters import ImageExporter

        exporter = ImageExporter(self.plot.getPlotItem())
        exporter.parameters()["width"] = width
        image = exporter.export(toBytes=True)
        array = QByteArray()
        buffer = QBuffer(array)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        return atomic_write_bytes(path, bytes(array.data()))

    def export_svg(self, path: str) -> int:
        """Save the plot as an SVG drawing; returns bytes written.

        Rendered with Qt's own QSvgGenerator: pyqtgraph 0.14's SVGExporter
        fails on the path syntax Qt 6.12 writes.
        """
        from PySide6.QtCore import QRectF, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        view = self.plot
        array = QByteArray()
        buffer = QBuffer(array)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        generator = QSvgGenerator()
        generator.setOutputDevice(buffer)
        generator.setSize(QSize(view.width(), view.height()))
        generator.setViewBox(QRectF(0, 0, view.width(), view.height()))
        generator.setTitle("SqueezeStudio trade-off plot")
        painter = QPainter(generator)
        view.render(painter)
        painter.end()
        buffer.close()
        return atomic_write_bytes(path, bytes(array.data()))

    def export_csv(self, path: str) -> int:
        """Save every point (all metrics) as CSV; returns bytes written."""
        return self.log.to_csv(path)

    def _export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog, QMessageBox

        path, chosen = QFileDialog.getSaveFileName(self, "Export trade-off plot", "tradeoff.png",
                                                   "PNG image (*.png);;SVG drawing (*.svg);;Points as CSV (*.csv)")
        if not path:
            return
        try:
            if path.lower().endswith(".svg") or "SVG" in chosen and not path.lower().endswith(".png"):
                self.export_svg(path)
            elif path.lower().endswith(".csv") or "CSV" in chosen and not path.lower().endswith(".png"):
                self.export_csv(path)
            else:
                self.export_png(path)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            QMessageBox.warning(self, "Export failed", describe_error(exc)[0])
