"""The trade-off plot: one point per experiment, any two measured numbers, Pareto frontier on top.

x and y are chosen from :data:`~squeezestudio.core.session.plot_axes.PLOT_METRICS`
(the exact .sqz size, top-1, top-5, agreement, the deployable latencies once
measured); size is drawn on a log axis labelled in B/KB/MB. The frontier is
the core's :func:`~squeezestudio.core.session.plot_axes.plot_frontier` for
that pair, with each metric's own better side, drawn as a step line. Points
can be coloured by a third metric (a viridis scale with a colour bar; points
that lack it are grey), otherwise frontier points are orange. The original
model is a star. When points were measured on a subset of the data, the
summary says which, and points measured on all images are diamonds. Only
points measured on the same images are compared (the core's
:func:`~squeezestudio.core.session.interactive_subset.frontier_images`: those
interactive points are measured on now): the rest are drawn hollow, never on
the frontier, and the legend and summary say so.
Hovering shows the recipe, clicking emits the experiment id
so the window can restore that recipe. The plot redraws from the
ExperimentLog's change callbacks and holds no state beyond its three choices,
which it restores from and writes to the app's settings when given them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.session.experiments import Experiment, ExperimentLog, format_bytes, recipe_summary
from squeezestudio.core.session.interactive_subset import (compared, frontier_images, measured_note, measured_on_all,
                                                           subset_summary)
from squeezestudio.core.session.plot_axes import (DEFAULT_X, DEFAULT_Y, PLOT_METRICS, SIZE, PlotMetric, frontier_steps,
                                                  plot_frontier, plot_metric)
from squeezestudio.gui.qt_settings import AppSettings
from squeezestudio.gui.qt_worker import describe_error

METRICS = {"top1": "Top-1 accuracy", "top5": "Top-5 accuracy", "agreement": "Agreement with original"}
"""The accuracy-like metrics (fractions) the tooltip lists as percentages."""

NO_COLOUR = "frontier"
GREY = (175, 175, 175)
BLUE, ORANGE, GOLD = (60, 130, 220), (230, 120, 30), (250, 200, 40)


class BytesLogAxis(pg.AxisItem):
    """A log-scale axis whose tick labels are byte sizes rather than powers of ten (plain numbers when off)."""

    min_label_spacing = 56  # pixels between two labelled ticks
    bytes_labels = True

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - Qt naming
        if not self.bytes_labels:
            return super().tickStrings(values, scale, spacing)
        if not self.logMode:
            return [format_bytes(v) for v in values]
        # Label a tick only where there is room (minor ticks crowd near each decade).
        low, high = self.range
        vertical = self.orientation in ("left", "right")
        length, spacing = (self.height(), 24) if vertical else (self.width(), self.min_label_spacing)
        pixels_per_unit = length / max(high - low, 1e-9)
        labels, last = [], -math.inf
        for v in values:
            if (v - last) * pixels_per_unit >= spacing:
                labels.append(format_bytes(10 ** v))
                last = v
            else:
                labels.append("")
        return labels


def _metric_combo(tip: str, extra: Optional[tuple[str, str]] = None) -> QComboBox:
    combo = QComboBox()
    if extra is not None:
        combo.addItem(extra[1], extra[0])
    for key, metric in PLOT_METRICS.items():
        combo.addItem(metric.label, key)
    combo.setToolTip(tip)
    # as wide as a short label, not the longest one: the summary beside the combos needs the room
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(15)
    return combo


class QtTradeoffPlot(QWidget):
    """Scatter of experiments (any metric against any other) with the Pareto frontier."""

    pointClicked = Signal(str)

    def __init__(self, log: ExperimentLog, parent: Optional[QWidget] = None, *,
                 defaults: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 settings: Optional[AppSettings] = None) -> None:
        """``defaults``: each method's default knobs, left out of the tooltips' recipe summaries.
        ``settings``: where the x/y/colour choices are restored from and remembered (None: not kept)."""
        super().__init__(parent)
        self.log = log
        self.defaults: Mapping[str, Mapping[str, Any]] = defaults or {}
        self.settings = settings
        self.x_name, self.metric_name, self.colour_name = DEFAULT_X, DEFAULT_Y, NO_COLOUR
        if settings is not None:
            self.x_name, self.metric_name, colour = settings.plot_axes()
            self.colour_name = colour or NO_COLOUR
        self.current_id: Optional[str] = None
        self.frontier_ids: list[str] = []
        self._ids: list[str] = []
        self._mixed = False  # points measured on a subset and on all images are both shown
        self._hollow_in_legend = False

        self.x_combo = _metric_combo("Which measured number goes across")
        self.combo = _metric_combo("Which measured number goes up")
        self.colour_combo = _metric_combo("Colour the points by a third number (grey: not measured)",
                                          (NO_COLOUR, "Pareto frontier"))
        for combo in (self.x_combo, self.combo, self.colour_combo):
            combo.currentIndexChanged.connect(lambda _: self._combos_changed())
        self.summary = QLabel("")
        self.summary.setWordWrap(False)
        # the summary gives way (its full text is its tooltip): it must never widen the window
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.export_button = QToolButton()
        self.export_button.setText("Export…")
        self.export_button.setToolTip("Save the plot as PNG or SVG, or the points as CSV")
        self.export_button.clicked.connect(self._export_dialog)

        self.axis = BytesLogAxis("bottom")
        self.y_axis = BytesLogAxis("left")
        self.plot = pg.PlotWidget(axisItems={"bottom": self.axis, "left": self.y_axis})
        self.plot.setBackground(None)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.frontier = pg.PlotDataItem(pen=pg.mkPen(ORANGE, width=2))
        self.scatter = pg.ScatterPlotItem(size=10, hoverable=True, tip=self._tip,
                                          hoverSize=14, hoverPen=pg.mkPen("w", width=2))
        self.original = pg.ScatterPlotItem(size=18, symbol="star", pen=pg.mkPen((20, 20, 20)),
                                           brush=pg.mkBrush(*GOLD), hoverable=True, tip=self._tip)
        self.elsewhere = pg.ScatterPlotItem(size=10, hoverable=True, tip=self._tip, hoverSize=14,
                                            pen=pg.mkPen(BLUE, width=2), brush=pg.mkBrush(0, 0, 0, 0))
        legend = self.legend = self.plot.addLegend(offset=(-10, -10), labelTextSize="8pt")
        for item in (self.frontier, self.elsewhere, self.scatter, self.original):
            self.plot.addItem(item)
        legend.addItem(self.scatter, "experiment")
        legend.addItem(self.original, "original model")
        legend.addItem(self.frontier, "Pareto frontier")
        self.scatter.sigClicked.connect(self._clicked)
        self.original.sigClicked.connect(self._clicked)
        self.elsewhere.sigClicked.connect(self._clicked)
        self.colour_map = pg.colormap.get("viridis")
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=self.colour_map, interactive=False,
                                          colorMapMenu=False, width=14)
        self.plot.getPlotItem().layout.addItem(self.colour_bar, 2, 5)
        self.colour_bar.setVisible(False)
        # Says why the plot is empty when points exist but none has both chosen numbers (a remembered
        # latency axis before any latency was measured); anchored to the view, not to the data.
        self.empty_note = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))
        self.empty_note.setParentItem(self.plot.getPlotItem().getViewBox())
        self.empty_note.setVisible(False)
        self.plot.getPlotItem().getViewBox().sigResized.connect(lambda *_: self._center_empty_note())

        top = QHBoxLayout()
        for text, combo in (("x", self.x_combo), ("y", self.combo), ("colour", self.colour_combo)):
            top.addWidget(QLabel(text))
            top.addWidget(combo)
        top.addWidget(self.summary, 1)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self._select_combos()

        self.log.on_change.append(self.refresh)
        self.destroyed.connect(lambda *_: self._detach())
        self.refresh()

    def _detach(self) -> None:
        if self.refresh in self.log.on_change:
            self.log.on_change.remove(self.refresh)

    # -- choices --------------------------------------------------------
    def set_metric(self, metric: str) -> None:
        """Plot ``metric`` up the y axis."""
        self.set_axes(y=metric)

    def set_axes(self, x: Optional[str] = None, y: Optional[str] = None, colour: Optional[str] = None) -> None:
        """Choose what goes across, up and into the colour (``"frontier"``: no colour scale); None keeps it."""
        for key in (x, y) + ((colour,) if colour not in (None, NO_COLOUR) else ()):
            if key is not None:
                plot_metric(key)  # ValueError for a name that is not a plot metric
        self.x_name = x or self.x_name
        self.metric_name = y or self.metric_name
        self.colour_name = colour or self.colour_name
        if self.settings is not None:
            self.settings.set_plot_axes(self.x_name, self.metric_name,
                                        None if self.colour_name == NO_COLOUR else self.colour_name)
        self._select_combos()
        self.refresh()

    def _select_combos(self) -> None:
        for combo, key in ((self.x_combo, self.x_name), (self.combo, self.metric_name),
                           (self.colour_combo, self.colour_name)):
            index = combo.findData(key)
            if index != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)

    def _combos_changed(self) -> None:
        self.set_axes(self.x_combo.currentData(), self.combo.currentData(), self.colour_combo.currentData())

    def set_current(self, experiment_id: Optional[str]) -> None:
        """Mark the experiment whose recipe is current (drawn with a ring)."""
        self.current_id = experiment_id
        self.refresh()

    def plotted(self) -> list[Experiment]:
        """Experiments that have a value for both chosen metrics."""
        mx, my = plot_metric(self.x_name), plot_metric(self.metric_name)
        return [e for e in self.log if mx.value(e) is not None and my.value(e) is not None]

    # -- drawing --------------------------------------------------------
    @staticmethod
    def _coordinate(metric: PlotMetric, value: float) -> float:
        return math.log10(value) if metric.unit == "bytes" else metric.shown(value)

    def _pos(self, e: Experiment) -> tuple[float, float]:
        mx, my = plot_metric(self.x_name), plot_metric(self.metric_name)
        return self._coordinate(mx, mx.value(e)), self._coordinate(my, my.value(e))  # type: ignore[arg-type]

    def refresh(self) -> None:
        points = self.plotted()
        mx, my = plot_metric(self.x_name), plot_metric(self.metric_name)
        for axis, metric, side in ((self.axis, mx, "bottom"), (self.y_axis, my, "left")):
            axis.bytes_labels = metric.unit == "bytes"
            axis.setLogMode(metric.unit == "bytes")
            self.plot.setLabel(side, metric.title())
        images = frontier_images(points, self.log.images)  # only points on the same images are compared
        idx = plot_frontier(points, self.x_name, self.metric_name, self.log.chance, images)  # chance: never optimal
        self.frontier_ids = [points[i].id for i in idx]
        colours = self._colours(points)
        self._mixed = bool(subset_summary(points))  # some points saw a subset: mark those that saw everything
        same, other = compared(points, images)
        self.scatter.setData(spots=[self._spot(e, colours) for e in same if not e.is_original])
        self.original.setData(spots=[self._spot(e, colours) for e in same if e.is_original])
        self.elsewhere.setData(spots=[self._spot(e, colours, hollow=True) for e in other])
        if bool(other) != self._hollow_in_legend:
            if other:
                self.legend.addItem(self.elsewhere, "other images: not compared")
            else:
                self.legend.removeItem(self.elsewhere)
            self._hollow_in_legend = bool(other)
        self._ids = [e.id for e in points]
        xs, ys = frontier_steps([self._pos(points[i]) for i in idx], mx.smaller_is_better)
        self.frontier.setData(np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64))
        values = [self._pos(e)[1] for e in points]
        if my.unit == "%" and values and max(values) - min(values) < 2.0:  # a few alike: a readable range
            middle = (max(values) + min(values)) / 2
            self.plot.setYRange(max(0.0, middle - 5.0), min(100.0, middle + 5.0), padding=0)
        else:
            self.plot.enableAutoRange(axis="y")
        self.plot.enableAutoRange(axis="x")
        self.summary.setText(self._summary_text(points))
        subset = subset_summary(points, self.log.images)  # also above the plot: the summary line gives way
        self.plot.setTitle(f"Points {subset}" if subset else None, size="9pt")
        self.summary.setToolTip(self.summary.text())
        self._show_empty_note(points, mx, my)

    def _show_empty_note(self, points: list[Experiment], mx: PlotMetric, my: PlotMetric) -> None:
        """A line in the middle of the plot naming the number no point has yet, and how to get it."""
        if points or not len(self.log):
            self.empty_note.setVisible(False)
            return
        missing = [m for m in (mx, my) if not any(m.value(e) is not None for e in self.log)] or [mx, my]
        how = "Run > Measure latency of this point, or choose" if any(m.unit == "ms" for m in missing) else "Choose"
        self.empty_note.setText(f"No point has {' and '.join(m.label for m in missing)} yet.\n"
                                f"{how} another axis above.")
        self._center_empty_note()
        self.empty_note.setVisible(True)

    def _center_empty_note(self) -> None:
        self.empty_note.setPos(self.plot.getPlotItem().getViewBox().boundingRect().center())

    def _colours(self, points: list[Experiment]) -> dict[str, tuple[int, int, int]]:
        """Each point's colour on the scale of the colour metric (grey without it); {} for frontier colouring."""
        if self.colour_name == NO_COLOUR:
            self.colour_bar.setVisible(False)
            return {}
        metric = plot_metric(self.colour_name)
        per_unit = 1000.0 if metric.unit == "bytes" else 1.0  # sizes on the colour bar in KB (short labels)
        measured = {e.id: metric.shown(v) / per_unit for e in points if (v := metric.value(e)) is not None}
        colours = {e.id: GREY for e in points}
        if measured:
            low, high = min(measured.values()), max(measured.values())
            span = high - low if high > low else 1.0
            rgba = self.colour_map.map(np.array([(v - low) / span for v in measured.values()]), mode="byte")
            colours.update({key: tuple(int(c) for c in rgba[i][:3]) for i, key in enumerate(measured)})
            self.colour_bar.setLevels((low, high if high > low else low + 1.0))
        self.colour_bar.setVisible(bool(measured))
        self.colour_bar.axis.setLabel(f"{metric.label} (KB)" if metric.unit == "bytes" else metric.title())
        return colours

    def _spot(self, e: Experiment, colours: Mapping[str, tuple[int, int, int]], hollow: bool = False) -> dict:
        """One point's spot; ``hollow`` (measured on other images): its colour as the outline, nothing inside."""
        current = e.id == self.current_id
        on_front = e.id in set(self.frontier_ids)
        if colours:
            brush = colours[e.id]
            pen = pg.mkPen((200, 30, 30), width=3) if current else \
                pg.mkPen(ORANGE, width=2.5) if on_front else pg.mkPen((30, 30, 30), width=1)
        else:
            brush = GOLD if e.is_original else ORANGE if on_front else BLUE
            pen = pg.mkPen((200, 30, 30) if current else (30, 30, 30), width=3 if current else 1)
        symbol = "star" if e.is_original else "d" if self._mixed and measured_on_all(e) else "o"
        if hollow:
            pen = pg.mkPen((200, 30, 30) if current else brush, width=3 if current else 2)
        return {"pos": self._pos(e), "data": e.id, "brush": pg.mkBrush(*brush, 0 if hollow else 255), "pen": pen,
                "symbol": symbol,
                "size": (18 if e.is_original else 10) + (6 if current else 0)}

    def _summary_text(self, points: list[Experiment]) -> str:
        text = f"{len(points)} point(s)"
        same = compared(points, frontier_images(points, self.log.images))[0]  # "× smaller" than the original on them
        original = next((e for e in same if e.is_original), None)
        best = [e for e in points if e.id in self.frontier_ids and not e.is_original]
        if SIZE in (self.x_name, self.metric_name) and original is not None and best:
            smallest = min(best, key=lambda e: e.size_bytes)
            text = (f"{len(points)} points · smallest on frontier: {format_bytes(smallest.size_bytes)} "
                    f"({original.size_bytes / smallest.size_bytes:.1f}× smaller)")
        elif best:
            text += f" · {len(self.frontier_ids)} on the frontier"
        if self.colour_name != NO_COLOUR:  # the colour bar beside the plot names the metric and its scale
            missing = sum(plot_metric(self.colour_name).value(e) is None for e in points)
            text += f" · grey: {missing} not measured" if missing else ""
        hidden = len(self.log) - len(points)
        subset = subset_summary(points, self.log.images)  # first: the summary gives way at its right end
        return (f"{subset[0].upper()}{subset[1:]} · " if subset else "") + text + (
            f" · {hidden} not shown (unmeasured)" if hidden else "")

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
            lines.append(f"evaluation time: {e.metric('latency'):.3f} ms/image")
        for metric in PLOT_METRICS.values():
            if metric.unit == "ms" and metric.value(e) is not None:
                lines.append(f"{metric.label}: {metric.value(e):.3f} ms")
        if measured_note(e):
            lines.append(measured_note(e))
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
