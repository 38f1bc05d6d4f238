"""The Compare tab: two points' per-layer diff, accuracy, agreement and the gallery of disagreements."""

from __future__ import annotations

import os

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_compare_view import QtCompareView
from squeezestudio.gui.qt_worker import JobManager


def test_compare_view_shows_the_diff_and_the_disagreeing_images(qtbot, tmp_path):
    torch.manual_seed(0)
    session = StudioSession(registry=default_registry())
    session.set_model(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8))
    session.set_data(ImageDataset(images=torch.randn(40, 1, 8, 8), labels=torch.randint(0, 4, (40,)),
                                  class_names=list("abcd")), "random")
    session.add_experiment(session.evaluate_recipe(None, original=True))
    pruned = session.add_experiment(session.evaluate_recipe({"methods": {"prune": {"sparsity": 0.95}}}))
    pruned.compressed = None  # compared from its stored file
    session.points.clear_memory()
    jobs = JobManager()
    view = QtCompareView(session, jobs)
    qtbot.addWidget(view)
    view.resize(900, 600)
    assert view.combo_a.count() == 2 and view.combo_b.currentData() == pruned.id  # B defaults to the newest
    view.set_points(session.experiments.original().id, pruned.id)
    view.compare()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    layers = [view.table.item(r, 0).text() for r in range(view.table.rowCount())]
    assert layers == ["fc1", "fc2", "fc3"]
    assert view.table.item(0, 7).text() == "dense" and view.table.item(0, 8).text() == "pruned"
    assert "agreement" in view.summary.text() and "#1" in view.summary.text()
    assert view.gallery_layout.count() == len(view.result.disagreements) > 0
    if os.environ.get("SQUEEZESTUDIO_SCREENSHOTS"):
        view.grab().save(os.environ["SQUEEZESTUDIO_SCREENSHOTS"])
    jobs.shutdown()


def test_compare_uses_the_images_the_points_were_measured_on(qtbot):
    torch.manual_seed(0)
    session = StudioSession(registry=default_registry())
    session.set_model(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8))
    session.set_data(ImageDataset(images=torch.randn(40, 1, 8, 8), labels=torch.arange(40) % 4,
                                  class_names=list("abcd")), "random")
    session.set_interactive_limit(20)
    original = session.add_experiment(session.evaluate_recipe(None, original=True))
    pruned = session.add_experiment(session.evaluate_recipe({"methods": {"prune": {"sparsity": 0.95}}}))
    jobs = JobManager()
    view = QtCompareView(session, jobs)
    qtbot.addWidget(view)
    view.set_points(original.id, pruned.id)
    view.compare()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    assert view.result.n == 20 and view.compared_on[0] is session.interactive_data(20)
    assert view.result.top1_b == pytest.approx(pruned.metric("top1"))  # the plot's number, on the same images
    assert "on 20 of 40 images (a fixed stratified subset)" in view.summary.text()
    # both measured on all images: compared on all of them
    full_original = session.add_experiment(session.evaluate_recipe(None, original=True, images=40))
    full = session.add_experiment(session.evaluate_recipe({"methods": {"prune": {"sparsity": 0.95}}}, images=40))
    view.result = None
    view.set_points(full_original.id, full.id)
    view.compare()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    assert view.result.n == 40 and view.result.top1_b == pytest.approx(full.metric("top1"))
    assert "on all 40 images" in view.summary.text()
    jobs.shutdown()
