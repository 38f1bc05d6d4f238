"""The trade-off plot: right Pareto points, clicks emit ids, exports write files."""

from __future__ import annotations

import math

import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from squeezestudio.core.session.experiments import Experiment, ExperimentLog
from squeezestudio.gui.qt_tradeoff_plot import BytesLogAxis, QtTradeoffPlot


def _log():
    return ExperimentLog([
        Experiment("orig", {}, "original", 400_000, {"top1": 0.95, "top5": 0.99, "agreement": 1.0}, is_original=True),
        Experiment("a", {"methods": {"prune": {"sparsity": 0.5}}}, "prune 50%", 210_000,
                   {"top1": 0.94, "top5": 0.99, "agreement": 0.97}),
        Experiment("b", {"methods": {"prune": {"sparsity": 0.9}}}, "prune 90%", 60_000,
                   {"top1": 0.80, "top5": 0.97, "agreement": 0.81}),
        Experiment("c", {"methods": {"cluster": {"bits": 2}}}, "cluster 2 bits", 90_000,
                   {"top1": 0.70, "top5": 0.95, "agreement": 0.70}),
        Experiment("d", {"methods": {"cluster": {"bits": 5}}}, "cluster 5 bits", 80_000,
                   {"top1": 0.93, "top5": None, "agreement": 0.96}),
    ])


@pytest.fixture
def plot(qtbot):
    widget = QtTradeoffPlot(_log())
    widget.resize(700, 450)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_frontier_and_points(plot):
    assert plot.frontier_ids == ["b", "d", "a", "orig"]
    xs, ys = plot.frontier.getData()
    # step line: 4 frontier points -> 7 vertices, horizontal then vertical
    assert len(xs) == 7
    assert xs[1] == pytest.approx(math.log10(80_000)) and ys[1] == pytest.approx(80.0)
    assert len(plot.scatter.data) == 4 and len(plot.original.data) == 1


def test_metric_switch_changes_frontier_and_drops_missing_values(plot):
    plot.set_metric("top5")
    assert plot.combo.currentData() == "top5"
    assert {s["data"] for s in plot.scatter.data} == {"a", "b", "c"}  # d has no top-5
    assert plot.frontier_ids == ["b", "a"]  # orig ties a at 99% but is bigger
    plot.combo.setCurrentIndex(plot.combo.findData("agreement"))
    assert plot.metric_name == "agreement"
    assert plot.frontier_ids == ["b", "d", "a", "orig"]


def test_new_experiment_redraws(plot):
    plot.log.append(Experiment("e", {}, "tiny", 30_000, {"top1": 0.85}))
    assert plot.frontier_ids[0] == "e" and "b" not in plot.frontier_ids


def test_clicking_a_point_emits_its_id(qtbot, plot):
    torch.manual_seed(0)
    plot.plot.getPlotItem().vb.autoRange(padding=0.1)
    qtbot.wait(50)
    spot = next(s for s in plot.scatter.points() if s.data() == "c")
    scene_pos = plot.scatter.mapToScene(spot.pos())
    view_pos = plot.plot.mapFromScene(scene_pos)
    with qtbot.waitSignal(plot.pointClicked, timeout=2000) as blocker:
        qtbot.mouseClick(plot.plot.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
    assert blocker.args == ["c"]


def test_tooltip_has_size_metrics_and_recipe(plot):
    text = plot._tip(0, 0, "a")
    assert "210 KB" in text and "94.00%" in text and "prune(sparsity=0.5)" in text


def test_axis_labels_bytes_and_skips_crowded_ticks(qtbot):
    axis = BytesLogAxis("bottom")
    axis.setLogMode(True)
    axis.setRange(2, 7)
    axis.resize(600, 40)
    assert axis.tickStrings([3, 6], 1, 1) == ["1 KB", "1 MB"]
    assert axis.tickStrings([3, 3.01, 4], 1, 1) == ["1 KB", "", "10 KB"]


def test_exports(tmp_path, plot):
    png, svg, csv = tmp_path / "p.png", tmp_path / "p.svg", tmp_path / "p.csv"
    assert plot.export_png(str(png), width=600) == png.stat().st_size
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.export_svg(str(svg)) > 0 and b"<svg" in svg.read_bytes()
    plot.export_csv(str(csv))
    assert csv.read_text().count("\n") == 6
