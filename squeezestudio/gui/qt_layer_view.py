"""Where the parameters and bytes are: a per-layer bar chart linked to a sortable table.

Bars stack kept (coloured by bits per weight) over pruned (grey) parameters,
with a log-scale toggle for models whose classifier dwarfs the rest. Selecting
a bar selects its table row and the other way round; both report the choice
through ``layerSelected`` so the session and the override panel follow.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QCheckBox, QHBoxLayout, QLabel, QSplitter, QTableView, QVBoxLayout, QWidget

from squeezestudio.core.session.experiments import format_bytes
from squeezestudio.core.compression.layer_table import COLUMNS, HEADERS, LayerRow
from squeezestudio.core.printable import printable

PRUNED_COLOR = (170, 170, 170)
SELECTED_PEN = (220, 40, 40)


def bits_color(bits: Optional[float]) -> tuple[int, int, int]:
    """Colour for a bit width: blue at 32 bits through green to orange at 1 bit."""
    if bits is None:
        return PRUNED_COLOR
    t = 1.0 - min(1.0, max(0.0, math.log2(max(bits, 1.0)) / 5.0))
    stops = [(0.0, (70, 110, 200)), (0.5, (60, 170, 110)), (1.0, (235, 130, 40))]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return tuple(int(round(a + (b - a) * f)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


def bar_ticks(names: Sequence[str], max_labels: int = 10) -> list[tuple[int, str]]:
    """Tick labels under the bars: short names, thinned so they never overlap."""
    step = max(1, math.ceil(len(names) / max_labels))
    short = [".".join(name.split(".")[-2:]) if len(name) > 12 else name for name in names]
    return [(i, short[i]) for i in range(0, len(names), step)]


def _text(row: LayerRow, column: str) -> str:
    value = row.value(column)
    if value is None:
        return ""
    if column == "compressed_bytes":
        return format_bytes(value)
    if column == "share":
        return f"{value * 100:.1f}%"
    if column == "bits":
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class LayerTableModel(QAbstractTableModel):
    """The rows as a Qt table; sorts on raw numbers through ``Qt.UserRole``."""

    def __init__(self, parent: Optional[Any] = None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []

    def set_rows(self, rows: Sequence[LayerRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return printable(_text(row, column))
        if role == Qt.ItemDataRole.UserRole:
            value = row.value(column)
            return -1 if value is None else value
        if role == Qt.ItemDataRole.TextAlignmentRole and column not in ("name", "type", "shape"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class QtLayerView(QWidget):
    """Bar chart + table of layers, with linked selection."""

    layerSelected = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []
        self.selected: Optional[str] = None
        self.model = LayerTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # model order first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(self._table_selection)

        self.chart = pg.PlotWidget()
        self.chart.setBackground(None)
        self.chart.setMenuEnabled(False)
        self.chart.setMouseEnabled(x=True, y=False)
        self.chart.setLabel("left", "Parameters")
        self.kept_bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.pruned_bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.highlight = pg.BarGraphItem(x=[], height=[], width=0.9, brush=None,
                                         pen=pg.mkPen(SELECTED_PEN, width=2))
        for item in (self.kept_bars, self.pruned_bars, self.highlight):
            self.chart.addItem(item)
        self.chart.scene().sigMouseClicked.connect(self._chart_clicked)

        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Show parameter counts on a logarithmic axis")
        self.log_box.toggled.connect(lambda _: self._draw())
        self.legend = QLabel("Kept parameters, coloured by bits per weight (blue 32 → orange 1); grey: pruned")
        self.legend.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.legend, 1)
        top.addWidget(self.log_box)
        chart_box = QWidget()
        chart_layout = QVBoxLayout(chart_box)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.addLayout(top)
        chart_layout.addWidget(self.chart, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(chart_box)
        self.splitter.addWidget(self.table)
        self.splitter.setSizes([420, 580])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.splitter)

    def _set_ticks(self) -> None:
        """As many bar labels as fit the chart's width (about 7 px per character)."""
        names = [r.name for r in self.rows]
        short = [t for _, t in bar_ticks(names, max_labels=max(1, len(names)))]
        longest = max((len(t) for t in short), default=1)
        fit = max(2, int(self.chart.width() * 0.85) // (7 * longest + 14))
        self.chart.getAxis("bottom").setTicks([bar_ticks(names, max_labels=fit)])

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        if self.rows:
            self._set_ticks()

    # -- data -----------------------------------------------------------
    def set_rows(self, rows: Sequence[LayerRow]) -> None:
        """Show new rows, keeping the selected layer if it still exists."""
        self.rows = list(rows)
        self.model.set_rows(self.rows)
        self.table.resizeColumnsToContents()
        self._set_ticks()
        self._draw()
        keep = self.selected if any(r.name == self.selected for r in self.rows) else None
        self.selected = None
        self.select_layer(keep, emit=False)

    def heights(self) -> tuple[np.ndarray, np.ndarray]:
        """(kept top, pruned top) per bar, in the chart's y units (log10 when on)."""
        kept = np.array([r.kept for r in self.rows], dtype=np.float64)
        total = np.array([r.params for r in self.rows], dtype=np.float64)
        if self.log_box.isChecked():
            return np.log10(kept + 1), np.log10(total + 1)
        return kept, total

    def _draw(self) -> None:
        log = self.log_box.isChecked()
        self.chart.getAxis("left").setLogMode(log)
        x = np.arange(len(self.rows), dtype=np.float64)
        kept_top, total_top = self.heights()
        brushes = [pg.mkBrush(*bits_color(r.bits)) for r in self.rows]
        self.kept_bars.setOpts(x=x, y0=np.zeros_like(x), height=kept_top, width=0.8, brushes=brushes)
        self.pruned_bars.setOpts(x=x, y0=kept_top, height=total_top - kept_top, width=0.8,
                                 brush=pg.mkBrush(*PRUNED_COLOR))
        self._draw_highlight()
        self.chart.getPlotItem().vb.autoRange(padding=0.05)

    def _draw_highlight(self) -> None:
        index = self.index_of(self.selected)
        if index is None:
            self.highlight.setOpts(x=[], height=[])
            return
        _, total_top = self.heights()
        self.highlight.setOpts(x=[index], y0=[0], height=[total_top[index]], width=0.9)

    def index_of(self, name: Optional[str]) -> Optional[int]:
        return next((i for i, r in enumerate(self.rows) if r.name == name), None)

    # -- selection ------------------------------------------------------
    def select_layer(self, name: Optional[str], *, emit: bool = True) -> None:
        """Select ``name`` in both the chart and the table."""
        if name == self.selected:
            return
        self.selected = name
        index = self.index_of(name)
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        try:
            selection.clearSelection()
            if index is not None:
                proxy_index = self.proxy.mapFromSource(self.model.index(index, 0))
                selection.select(proxy_index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                 | QItemSelectionModel.SelectionFlag.Rows)
                self.table.scrollTo(proxy_index)
        finally:
            selection.blockSignals(False)
        self.table.viewport().update()
        self._draw_highlight()
        if emit and name is not None:
            self.layerSelected.emit(name)

    def _table_selection(self, *_: Any) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            source = self.proxy.mapToSource(rows[0])
            self.select_layer(self.rows[source.row()].name)

    def _chart_clicked(self, event: Any) -> None:
        vb = self.chart.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        index = int(round(point.x()))
        if 0 <= index < len(self.rows) and abs(point.x() - index) <= 0.45:
            self.select_layer(self.rows[index].name)
