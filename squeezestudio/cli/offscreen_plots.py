"""PNG plots for command-line runs, drawn by the same widgets the desktop app uses.

Qt renders offscreen when no display is available, so ``sweep`` and
``sensitivity`` produce images on a headless machine too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence


def _application():
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


def save_tradeoff_png(rows: Sequence, path: Path, metric: str = "top1", chance: Optional[float] = None) -> int:
    """The size-vs-accuracy scatter with the Pareto frontier, as the GUI draws it."""
    from squeezestudio.core.session.experiments import Experiment, ExperimentLog, new_experiment_id

    app = _application()
    from squeezestudio.gui.qt_tradeoff_plot import QtTradeoffPlot

    log = ExperimentLog([Experiment(id=new_experiment_id(), recipe=r.recipe, label=r.label,
                                    size_bytes=r.size_bytes, metrics=dict(r.metrics),
                                    is_original=(r.label == "original")) for r in rows], chance=chance)
    plot = QtTradeoffPlot(log)
    plot.resize(900, 600)
    plot.set_metric(metric)
    plot.refresh()
    app.processEvents()
    return plot.export_png(str(path))


def save_curves_png(curves: dict[str, list[tuple[float, Optional[float]]]], path: Path, *,
                    title: str, x_label: str, baseline: Optional[float] = None,
                    invert_x: bool = False) -> int:
    """One line per layer (top-1 % against the level), the baseline dashed, the legend beside the plot.

    The x-axis ticks are the scanned levels themselves (no "x0.001" scale
    factor), and the legend sits in its own column so it never covers a curve.
    """
    from squeezestudio.core.atomic_write import atomic_write_bytes

    _application()
    import pyqtgraph as pg
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt

    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    window = pg.GraphicsLayoutWidget()
    window.resize(1200, 600)
    item = window.addPlot(row=0, col=0, title=title)
    item.setLabel("bottom", x_label)
    item.setLabel("left", "top-1 accuracy (%)")
    for axis in ("bottom", "left"):
        item.getAxis(axis).enableAutoSIPrefix(False)
    item.showGrid(x=True, y=True, alpha=0.3)
    levels = sorted({x for pts in curves.values() for x, _ in pts})
    item.getAxis("bottom").setTicks([[(x, f"{x:g}") for x in levels]])
    legend = pg.LegendItem(labelTextSize="9pt")
    side = window.addLayout(row=0, col=1)  # the legend's own column, its entries at the top
    side.addItem(legend, row=0, col=0)
    side.addLabel("", row=1, col=0)
    side.layout.setRowStretchFactor(1, 10)
    if invert_x:
        item.invertX(True)
    for i, (layer, pts) in enumerate(curves.items()):
        xs = [x for x, y in pts if y is not None]
        ys = [100.0 * y for x, y in pts if y is not None]
        pen = pg.mkPen(pg.intColor(i, hues=max(len(curves), 1)), width=2)
        legend.addItem(item.plot(xs, ys, pen=pen, symbol="o", symbolSize=6, symbolBrush=pen.color()), layer)
    if baseline is not None:
        line = item.addLine(y=100.0 * baseline, pen=pg.mkPen("k", style=Qt.PenStyle.DashLine))
        legend.addItem(pg.PlotDataItem(pen=line.pen), "original")
    window.ci.layout.setColumnStretchFactor(0, 5)
    window.ci.layout.setColumnStretchFactor(1, 1)
    image = window.grab().toImage()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return atomic_write_bytes(path, bytes(data.data()))
