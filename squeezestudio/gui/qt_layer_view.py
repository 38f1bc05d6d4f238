"""Where the parameters and bytes are: a per-layer bar chart linked to a sortable table.

Bars stack kept (coloured by bits per weight) over pruned (grey) parameters,
with a log-scale toggle for models whose classifier dwarfs the rest. Selecting
a bar selects its table row and the other way round; both report the choice
through ``layerSelected`` (the primary layer) and ``layersSelected`` (every
selected layer: Ctrl/Shift in the table, Ctrl-click on a bar) so the session
and the override panel follow. Layers with per-layer overrides are marked
with a diamond in the table and a dashed outline in the chart.
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
OVERRIDE_PEN = (120, 60, 170)
OVERRIDE_MARK = "\u25c6 "  # shown before a layer name that has per-layer overrides
KEY_COLUMNS = ("name", "compressed_bytes", "share", "bits", "params", "nonzeros")
"""Shown first, so they are visible at the default size; type, shape and MACs follow."""
MAX_COLUMN_PX = {"name": 220, "type": 110, "shape": 120}


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
        self.overridden: set[str] = set()

    def set_overridden(self, names: set[str]) -> None:
        """Mark the layers with per-layer overrides (their names get a diamond)."""
        self.overridden = set(names)
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0))

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
            mark = OVERRIDE_MARK if column == "name" and row.name in self.overridden else ""
            return mark + printable(_text(row, column))
        if role == Qt.ItemDataRole.ToolTipRole and column == "name" and row.name in self.overridden:
            return f"{printable(row.name)} has per-layer settings (see the selected-layer panel)"
        if role == Qt.ItemDataRole.UserRole:
            value = row.value(column)
            return -1 if value is None else value
        if role == Qt.ItemDataRole.TextAlignmentRole and column not in ("name", "type", "shape"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class QtLayerView(QWidget):
    """Bar chart + table of layers, with linked selection."""

    layerSelected = Signal(str)
    layersSelected = Signal(list)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []
        self.selected: Optional[str] = None
        self.selected_names: list[str] = []
        self.model = LayerTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # model order first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setToolTip("Ctrl- or Shift-click to select several layers: a per-layer setting applies to all")
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
        self.override_marks = pg.BarGraphItem(x=[], height=[], width=0.96, brush=None,
                                              pen=pg.mkPen(OVERRIDE_PEN, width=1.5, style=Qt.PenStyle.DashLine))
        for item in (self.kept_bars, self.pruned_bars, self.override_marks, self.highlight):
            self.chart.addItem(item)
        self.chart.scene().sigMouseClicked.connect(self._chart_clicked)

        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Show parameter counts on a logarithmic axis")
        self.log_box.toggled.connect(lambda _: self._draw())
        self.legend = QLabel("Kept parameters, coloured by bits per weight (blue 32 → orange 1); grey: pruned; "
                             "dashed outline / \u25c6: per-layer settings")
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
        self._fit_columns()
        self._set_ticks()
        self._draw()
        self.select_layers(self.selected_names, emit=False)  # those that still exist stay selected

    def _fit_columns(self) -> None:
        """Key columns first and long text columns capped, so the sizes show at the default width."""
        header = self.table.horizontalHeader()
        order = list(KEY_COLUMNS) + [c for c in COLUMNS if c not in KEY_COLUMNS]
        for visual, column in enumerate(order):
            header.moveSection(header.visualIndex(COLUMNS.index(column)), visual)
        self.table.resizeColumnsToContents()
        for column, cap in MAX_COLUMN_PX.items():
            index = COLUMNS.index(column)
            if self.table.columnWidth(index) > cap:
                self.table.setColumnWidth(index, cap)

    def set_overridden(self, names: set[str]) -> None:
        """Mark the layers that have per-layer overrides in the table and the chart."""
        self.model.set_overridden(names)
        self._draw_overrides()

    def _draw_overrides(self) -> None:
        marked = [i for i, r in enumerate(self.rows) if r.name in self.model.overridden]
        if not marked:
            self.override_marks.setOpts(x=[], height=[])
            return
        _, total_top = self.heights()
        self.override_marks.setOpts(x=marked, y0=[0] * len(marked), height=[total_top[i] for i in marked], width=0.96)

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
        self._draw_overrides()
        self._draw_highlight()
        self.chart.getPlotItem().vb.autoRange(padding=0.05)

    def _draw_highlight(self) -> None:
        indices = [i for i in (self.index_of(n) for n in self.selected_names) if i is not None]
        if not indices:
            self.highlight.setOpts(x=[], height=[])
            return
        _, total_top = self.heights()
        self.highlight.setOpts(x=indices, y0=[0] * len(indices), height=[total_top[i] for i in indices], width=0.9)

    def index_of(self, name: Optional[str]) -> Optional[int]:
        return next((i for i, r in enumerate(self.rows) if r.name == name), None)

    # -- selection ------------------------------------------------------
    def select_layer(self, name: Optional[str], *, emit: bool = True) -> None:
        """Select ``name`` alone in both the chart and the table."""
        if name == self.selected and self.selected_names == ([name] if name else []):
            return
        self.select_layers([name] if name else [], emit=emit)

    def select_layers(self, names: Sequence[str], *, emit: bool = True) -> None:
        """Select ``names`` (the first is the primary layer) in both the chart and the table."""
        names = [n for n in dict.fromkeys(names) if self.index_of(n) is not None]
        self.selected_names = names
        self.selected = names[0] if names else None
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        try:
            selection.clearSelection()
            for name in names:
                proxy_index = self.proxy.mapFromSource(self.model.index(self.index_of(name), 0))
                selection.select(proxy_index, QItemSelectionModel.SelectionFlag.Select
                                 | QItemSelectionModel.SelectionFlag.Rows)
            if names:
                self.table.scrollTo(self.proxy.mapFromSource(self.model.index(self.index_of(names[0]), 0)))
        finally:
            selection.blockSignals(False)
        self.table.viewport().update()
        self._draw_highlight()
        self._emit(emit)

    def _emit(self, emit: bool) -> None:
        if emit and self.selected is not None:
            self.layerSelected.emit(self.selected)
            self.layersSelected.emit(list(self.selected_names))

    def _table_selection(self, *_: Any) -> None:
        rows = sorted(self.proxy.mapToSource(r).row() for r in self.table.selectionModel().selectedRows())
        if not rows:
            return
        names = [self.rows[r].name for r in rows]
        current = self.table.currentIndex()
        primary = self.rows[self.proxy.mapToSource(current).row()].name if current.isValid() else names[0]
        primary = primary if primary in names else names[0]
        self.selected_names = [primary] + [n for n in names if n != primary]
        self.selected = primary
        self._draw_highlight()
        self._emit(True)

    def _chart_clicked(self, event: Any) -> None:
        vb = self.chart.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        index = int(round(point.x()))
        if 0 <= index < len(self.rows) and abs(point.x() - index) <= 0.45:
            name = self.rows[index].name
            if event.modifiers() & Qt.KeyboardModifier.ControlModifier:  # Ctrl-click adds or removes a bar
                names = [n for n in self.selected_names if n != name]
                self.select_layers(names if name in self.selected_names else self.selected_names + [name])
            else:
                self.select_layer(name)
