"""Layer table and bar chart: rows from inspection + encodings, linked selection, sorting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from torch import nn

from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.model.inspection import inspect_model
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.compression.codec import size_report
from squeezestudio.core.compression.layer_table import COLUMNS, layer_table
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.gui.qt_layer_view import QtLayerView, bits_color


def tiny_handle() -> ModelHandle:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),
                           nn.Linear(8 * 4 * 4, 10))
    spec = InputSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
    return ModelHandle(module=module, name="tiny", input_spec=spec, class_names=[str(i) for i in range(10)],
                       source_format="zoo", architecture=describe_architecture(module))


def _rows(with_encoding=True):
    """Rows of a really compressed model (the last layer pruned and clustered) with its real size report."""
    handle = tiny_handle()
    if not with_encoding:
        return layer_table(inspect_model(handle))
    cm = compress(handle, Recipe(layers={"5": {"prune": {"sparsity": 0.75}, "cluster": {"bits": 4}}}),
                  registry=build_registry(plugins=False))
    return layer_table(inspect_model(cm.handle), cm.encodings, size_report(cm))


def test_rows_merge_inspection_encodings_and_sizes():
    rows = {r.name: r for r in _rows()}
    assert set(rows) == {"0", "2", "5"}
    linear = rows["5"]
    assert linear.params == 8 * 4 * 4 * 10 + 10
    assert linear.pruned == 960 and linear.kept == linear.params - linear.pruned
    assert linear.bits == 4.0 and rows["0"].bits == 32.0
    assert rows["0"].compressed_bytes is None  # an unencoded layer is stored raw, outside the layer rows
    assert 0 < linear.compressed_bytes < 1280 * 4 // 4  # far below even the pruned float32 size
    plain = {r.name: r for r in _rows(with_encoding=False)}
    assert sum(r.share for r in plain.values()) == pytest.approx(1.0)


def test_the_size_report_gives_bytes_per_layer_that_sum_to_its_layer_rows():
    handle = tiny_handle()
    cm = compress(handle, Recipe(methods={"cluster": {"bits": 3}}), registry=build_registry(plugins=False))
    sizes = size_report(cm)
    per_layer = sizes.bytes_per_layer()
    assert set(per_layer) == {"0", "2", "5"}
    assert sum(per_layer.values()) == sum(row.coded for row in sizes.layers)
    rows = {r.name: r for r in layer_table(inspect_model(cm.handle), cm.encodings, sizes)}
    assert rows["2"].share == pytest.approx(per_layer["2"] / sizes.total_bytes)
    assert {r.bits for r in rows.values()} == {3.0}


def test_bits_colour_runs_from_blue_to_orange():
    assert bits_color(32) == (70, 110, 200)
    assert bits_color(1) == (235, 130, 40)
    assert bits_color(4) != bits_color(8)


@pytest.fixture
def view(qtbot):
    widget = QtLayerView()
    qtbot.addWidget(widget)
    widget.resize(700, 500)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_rows(_rows())
    return widget


def test_chart_bars_stack_kept_and_pruned(view):
    kept = view.kept_bars.opts["height"]
    tops = view.pruned_bars.opts["y0"] + view.pruned_bars.opts["height"]
    assert list(tops) == [r.params for r in view.rows]
    assert kept[2] == view.rows[2].kept
    view.log_box.setChecked(True)
    assert view.kept_bars.opts["height"][0] == pytest.approx(np.log10(view.rows[0].kept + 1))


def test_table_selection_selects_bar_and_emits(qtbot, view):
    with qtbot.waitSignal(view.layerSelected) as blocker:
        view.table.selectRow(1)
    assert blocker.args == [view.proxy.index(1, 0).data()]
    assert view.highlight.opts["x"] == [view.index_of(blocker.args[0])]


def test_sorting_then_selecting_maps_to_the_right_layer(qtbot, view):
    view.table.sortByColumn(COLUMNS.index("params"), Qt.SortOrder.DescendingOrder)
    assert view.proxy.index(0, 0).data() == "5"
    with qtbot.waitSignal(view.layerSelected) as blocker:
        view.table.selectRow(0)
    assert blocker.args == ["5"]


def test_clicking_a_bar_selects_the_row(qtbot, view):
    vb = view.chart.getPlotItem().vb
    scene_point = vb.mapViewToScene(QPointF(2, view.rows[2].params * 0.5))
    widget_point = view.chart.mapFromScene(scene_point)
    with qtbot.waitSignal(view.layerSelected) as blocker:
        qtbot.mouseClick(view.chart.viewport(), Qt.MouseButton.LeftButton, pos=widget_point)
    assert blocker.args == ["5"]
    selected = view.table.selectionModel().selectedRows()
    assert len(selected) == 1 and selected[0].data() == "5"


def test_select_layer_programmatically_does_not_emit_when_asked(qtbot, view):
    seen = []
    view.layerSelected.connect(seen.append)
    view.select_layer("2", emit=False)
    assert view.table.selectionModel().selectedRows()[0].data() == "2" and seen == []
    view.set_rows(_rows(with_encoding=False))
    assert view.selected == "2"


def test_bar_ticks_are_thinned_and_shortened():
    from squeezestudio.gui.qt_layer_view import bar_ticks

    names = [f"features.{i}.expand3x3" for i in range(26)]
    ticks = bar_ticks(names, max_labels=10)
    assert len(ticks) <= 10 and ticks[0] == (0, "0.expand3x3") and ticks[1][0] == 3
    assert bar_ticks(["conv1", "fc"]) == [(0, "conv1"), (1, "fc")]
