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


def save_tradeoff_png(rows: Sequence, path: Path, metric: str = "top1") -> int:
    """The size-vs-accuracy scatter with the Pareto frontier, as the GUI draws it."""
    from squeezestudio.core.session.experiments import Experiment, ExperimentLog, new_experiment_id

    app = _application()
    from squeezestudio.gui.qt_tradeoff_plot import QtTradeoffPlot

    log = ExperimentLog([Experiment(id=new_experiment_id(), recipe=r.recipe, label=r.label,
                                    size_bytes=r.size_bytes, metrics=dict(r.metrics),
                                    is_original=(r.label == "original")) for r in rows])
    plot = QtTradeoffPlot(log)
    plot.resize(900, 600)
    plot.set_metric(metric)
    plot.refresh()
    app.processEvents()
    return plot.export_png(str(path))


def save_curves_png(curves: dict[str, list[tuple[float, Optional[float]]]], path: Path, *,
                    title: str, x_label: str, baseline: Optional[float] = None,
                    invert_x: bool = False) -> int:
    """One line per layer (e.g. top-1 vs sparsity), with the baseline as a dashed line."""
    from squeezestudio.core.atomic_write import atomic_write_bytes

    _application()
    import pyqtgraph as pg
    from pyqtgraph.exporters import ImageExporter
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt

    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    widget = pg.PlotWidget(title=title)
    widget.resize(900, 600)
    item = widget.getPlotItem()
    item.setLabel("bottom", x_label)
    item.setLabel("left", "top-1 accuracy")
    item.showGrid(x=True, y=True, alpha=0.3)
    item.addLegend(offset=(10, 10))
    if invert_x:
        item.invertX(True)
    for i, (layer, pts) in enumerate(curves.items()):
        xs = [x for x, y in pts if y is not None]
        ys = [y for x, y in pts if y is not None]
        pen = pg.mkPen(pg.intColor(i, hues=max(len(curves), 1)), width=2)
        item.plot(xs, ys, pen=pen, symbol="o", symbolSize=6, symbolBrush=pen.color(), name=layer)
    if baseline is not None:
        item.addLine(y=baseline, pen=pg.mkPen("k", style=Qt.PenStyle.DashLine))
    exporter = ImageExporter(item)
    exporter.parameters()["width"] = 1200
    image = exporter.export(toBytes=True)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return atomic_write_bytes(path, bytes(data.data()))
