"""The trade-off plot: right Pareto points, clicks emit ids, exports write files."""

from __future__ import annotations

import math
import os

import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from squeezestudio.core.session.experiments import Experiment, ExperimentLog
from squeezestudio.core.session.plot_axes import latency_key
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


def _with_latency(log):
    """b, d and orig timed as int8 ONNX (a and c not)."""
    key = latency_key("onnx-int8")
    for name, ms in (("b", 0.8), ("d", 1.5), ("orig", 3.0)):
        log.find(name).metrics[key] = ms
    return log, key


def test_any_pair_of_metrics_with_its_own_frontier(qtbot):
    log, key = _with_latency(_log())
    plot = QtTradeoffPlot(log)
    qtbot.addWidget(plot)
    plot.x_combo.setCurrentIndex(plot.x_combo.findData(key))
    assert plot.x_name == key and plot.metric_name == "top1"
    assert {s["data"] for s in plot.scatter.data} == {"b", "d"}  # a and c were never timed
    assert plot.frontier_ids == ["b", "d", "orig"]  # faster is better across, more accurate up
    assert not plot.axis.logMode and not plot.axis.bytes_labels
    assert plot.plot.getPlotItem().getAxis("bottom").labelText.startswith("Latency, int8 ONNX")
    assert "2 not shown" in plot.summary.text()
    # size up the y axis (log, in bytes), accuracy across: the frontier wants small files and high accuracy
    plot.set_axes(x="top1", y="size_bytes")
    assert plot.y_axis.logMode and plot.y_axis.bytes_labels and not plot.axis.logMode
    assert plot.frontier_ids == ["b", "d", "a", "orig"]  # by rising accuracy
    xs, ys = plot.frontier.getData()
    assert xs[:3].tolist() == [80.0, 80.0, 93.0] and ys[1] == pytest.approx(math.log10(80_000))  # up first
    with pytest.raises(ValueError):
        plot.set_axes(x="nonsense")


def test_colour_by_a_third_metric_greys_points_without_it(qtbot):
    log, key = _with_latency(_log())
    plot = QtTradeoffPlot(log)
    qtbot.addWidget(plot)
    plot.show()
    plot.colour_combo.setCurrentIndex(plot.colour_combo.findData(key))
    assert plot.colour_name == key and plot.colour_bar.isVisible()
    brushes = {s["data"]: s["brush"].color().getRgb()[:3] for s in plot.scatter.data}
    assert brushes["a"] == brushes["c"] == (175, 175, 175)  # not timed: grey
    fast, slow = plot.colour_map.map([0.0, 1.0], mode="byte")
    assert brushes["b"] == tuple(fast[:3])  # the fastest point is the low end of the scale
    assert plot.original.data[0]["brush"].color().getRgb()[:3] == tuple(slow[:3])
    assert plot.colour_bar.levels() == pytest.approx((0.8, 3.0))
    assert "grey: 2 not measured" in plot.summary.text()
    assert plot.colour_bar.axis.labelText.startswith("Latency, int8 ONNX")  # the scale says what it is
    assert plot.frontier_ids == ["b", "d", "a", "orig"]  # the frontier is still size against top-1
    front_pen = next(s["pen"] for s in plot.scatter.data if s["data"] == "b")
    assert front_pen.color().getRgb()[:3] == (230, 120, 30) and front_pen.widthF() == 2.5
    plot.set_axes(colour="frontier")
    assert not plot.colour_bar.isVisible()
    assert next(s["brush"] for s in plot.scatter.data if s["data"] == "b").color().getRgb()[:3] == (230, 120, 30)


def test_points_on_other_images_are_hollow_and_never_on_the_frontier(qtbot, tmp_path):
    def point(name, size, top1, images, original=False):
        return Experiment(name, {}, name, size, {"top1": top1, "images": images, "images_total": 5000},
                          is_original=original)

    log = ExperimentLog([point("orig", 400_000, 0.95, 1000, True), point("a", 200_000, 0.93, 1000),
                         point("b", 60_000, 0.80, 1000), point("old", 50_000, 0.90, 500),
                         point("orig_all", 500_000, 0.94, 5000, True), point("a_all", 200_000, 0.92, 5000)])
    log.set_images(1000)
    widget = QtTradeoffPlot(log)
    widget.resize(900, 500)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.frontier_ids == ["b", "a", "orig"]  # "old" is smaller and better than b, but saw other images
    assert [s.data() for s in widget.scatter.points()] == ["a", "b"]
    hollow = {s.data(): (s.symbol(), s.brush().color().alpha()) for s in widget.elsewhere.points()}
    assert hollow == {"old": ("o", 0), "orig_all": ("star", 0), "a_all": ("d", 0)}
    assert "other images: not compared" in [label.text for _, label in widget.legend.items]
    assert widget.summary.text().startswith("Measured on 1,000 of 5,000 images (a fixed stratified subset) · "
                                            "hollow, not compared: 2 on all 5,000, 1 on 500 of 5,000 · 6 points")
    assert "60 KB (6.7× smaller)" in widget.summary.text()  # against the original on the same images (not 8.3×)
    assert "measured on 500 of 5,000 images" in widget._tip(0, 0, "old")
    if os.environ.get("SQUEEZESTUDIO_SCREENSHOTS"):
        widget.grab().save(os.environ["SQUEEZESTUDIO_SCREENSHOTS"])
    log.set_images(5000)  # measuring on all images now: those are compared, the subsets' points are hollow
    assert widget.frontier_ids == ["a_all", "orig_all"]
    assert {s.data() for s in widget.elsewhere.points()} == {"orig", "a", "b", "old"}
    log.replace_all([p for p in log.list() if p.metric("images") == 5000])
    assert widget.summary.text().startswith("2 points") and len(widget.elsewhere.points()) == 0
    assert "other images: not compared" not in [label.text for _, label in widget.legend.items]


def test_an_axis_no_point_has_yet_says_so_in_the_plot(plot, tmp_path):
    """A remembered latency axis opens on points that were never timed: the plot says why it is empty."""
    key = latency_key("onnx-int8")
    plot.set_axes(x=key)
    assert plot.plotted() == [] and plot.empty_note.isVisible()
    text = plot.empty_note.toPlainText()
    assert "No point has Latency, int8 ONNX" in text and "Measure latency" in text
    plot.grab().save(str(tmp_path / "empty.png"))
    if os.environ.get("SQZ_SHOTS"):
        plot.grab().save(os.path.join(os.environ["SQZ_SHOTS"], "plot_empty_axis.png"))
    plot.log.find("b").metrics[key] = 0.8
    plot.refresh()
    assert not plot.empty_note.isVisible() and plot.frontier_ids == ["b"]
    plot.set_axes(x="size_bytes")
    assert not plot.empty_note.isVisible()
