"""Run on cluster...: a grid over the current recipe measured on a local Ray instance, points plotted as they come."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from squeezestudio.core.compression.codec import encode_sqz  # noqa: E402
from squeezestudio.core.compression.recipe import recipe_from_dict  # noqa: E402
from squeezestudio.core.data.dataset import PreprocessSpec  # noqa: E402
from squeezestudio.core.data.digits import load_digits_split  # noqa: E402
from squeezestudio.core.model.zoo import zoo_handle  # noqa: E402
from squeezestudio.core.session.studio_session import StudioSession  # noqa: E402
from squeezestudio.gui.qt_cluster_dialog import JOB, QtClusterDialog  # noqa: E402
from squeezestudio.gui.qt_tradeoff_plot import QtTradeoffPlot  # noqa: E402
from squeezestudio.gui.qt_worker import JobManager  # noqa: E402
from squeezestudio.core.compression.registry import default_registry


def test_points_arrive_on_the_plot_while_the_sweep_runs(qtbot, ray_cluster, tmp_path):
    torch.manual_seed(0)
    session = StudioSession(registry=default_registry())
    session.set_model(zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8))
    session.set_data(load_digits_split("val", PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,),
                                                             std=(0.5,))), "digits")
    session.set_recipe(recipe_from_dict({"version": 1, "methods": {"quantize": {"bits": 6}}, "layers": {}}))
    jobs = JobManager()
    dialog = QtClusterDialog(session, jobs)
    plot = QtTradeoffPlot(session.experiments)
    qtbot.addWidget(dialog)
    qtbot.addWidget(plot)
    dialog.grid.setPlainText("prune.sparsity=0.3,0.6,0.9")
    dialog.workers.setValue(2)
    while_running = []
    session.experiments.on_change.append(lambda: while_running.append(jobs.current(JOB) is not None))
    dialog.show()
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=120_000)
    assert "4 point(s) measured" in dialog.status.text()
    points = session.experiments.list()
    assert len(points) == 4 and len(plot.plotted()) == 4 and sum(p.is_original for p in points) == 1
    assert while_running[0]  # the first point was on the plot before the sweep had finished
    for p in points:
        assert p.compressed is not None and len(encode_sqz(p.compressed, registry=default_registry())) == p.size_bytes
        if not p.is_original:
            assert p.recipe["methods"]["quantize"] == {"bits": 6} and "(cluster)" in p.label
    dialog.grab().save(str(tmp_path / "cluster_dialog.png"))


def test_the_sweep_is_measured_on_the_interactive_subset(qtbot, ray_cluster):
    torch.manual_seed(0)
    session = StudioSession(registry=default_registry())
    session.set_model(zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8))
    session.set_data(load_digits_split("val", PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,),
                                                             std=(0.5,))), "digits")
    session.set_interactive_limit(100)
    session.add_experiment(session.evaluate_recipe(None, original=True))  # on the subset: the sweep's is skipped
    jobs = JobManager()
    dialog = QtClusterDialog(session, jobs)
    qtbot.addWidget(dialog)
    dialog.grid.setPlainText("prune.sparsity=0.8")
    dialog.workers.setValue(2)
    dialog.run()
    assert f"measured on 100 of {len(session.data)} images" in dialog.status.text()
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=120_000)
    assert "point(s) measured" in dialog.status.text(), dialog.status.text()
    original, point = session.experiments.list()
    assert point.metric("images") == 100 and point.metric("images_total") == len(session.data)
    local = session.evaluate_recipe(point.recipe)  # the same recipe measured here, on the same 100 images
    assert point.metric("top1") == local.metric("top1") and point.metric("agreement") == local.metric("agreement")
    jobs.shutdown()
