"""The interactive subset in the window: points on 20 of 60 images, Run > Measure on all images, the setting."""

from __future__ import annotations

import time

import os

import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.studio_session import StudioSession, recipe_from_dict
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_settings import AppSettings, make_settings

PRUNE = {"version": 1, "methods": {"prune": {"sparsity": 0.7}}, "layers": {}}


def _window(qtbot, settings):
    torch.manual_seed(0)
    session = StudioSession(registry=default_registry())
    window = QtMainWindow(session, settings=settings)
    qtbot.addWidget(window)
    window.show()
    session.set_model(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8))
    session.set_data(ImageDataset(images=torch.randn(60, 1, 8, 8), labels=torch.arange(60) % 4,
                                  class_names=list("abcd")), "random")
    return window


def _wait_for(qtbot, window, count):
    qtbot.waitUntil(lambda: len(window.session.experiments) >= count or bool(window.last_error[0]), timeout=60000)
    assert not window.last_error[0], window.last_error
    assert len(window.session.experiments) == count


def test_points_on_the_subset_then_one_on_all_images(qtbot, app_settings):
    app_settings.set_interactive_limit(20)
    window = _window(qtbot, app_settings)
    assert window.session.interactive_limit == 20  # the remembered setting reached the session
    window.runner.evaluate_original()
    _wait_for(qtbot, window, 1)
    window.session.set_recipe(recipe_from_dict(PRUNE))
    window.runner.evaluate(window.session.recipe)
    _wait_for(qtbot, window, 2)
    original, point = window.session.experiments.list()
    assert original.metric("images") == point.metric("images") == 20
    summary = window.plot.summary.text()
    assert summary.startswith("Measured on 20 of 60 images (a fixed stratified subset) · 2 point")

    window.plot.set_current(point.id)
    window.window_actions["measure_all"].trigger()
    _wait_for(qtbot, window, 4)  # the original on all images too: the new point is compared with it
    full_original, full = window.session.experiments.list()[2:]
    assert full_original.is_original and full_original.metric("images") == 60
    assert full.metric("images") == 60 and full.label == f"{point.label} (all 60 images)"
    assert full.recipe == point.recipe and window.plot.current_id == full.id
    # the frontier compares the points on the subset; the two on all images are hollow, and the legend says so
    assert "· hollow, not compared: 2 on all 60 · 4 point" in window.plot.summary.text()
    assert full.id not in window.plot.frontier_ids and full_original.id not in window.plot.frontier_ids
    assert "other images: not compared" in [label.text for _, label in window.plot.legend.items]
    assert "measured on all 60 images" in window.plot._tip(0, 0, full.id)
    assert "measured on 20 of 60 images" in window.plot._tip(0, 0, point.id)
    qtbot.waitUntil(lambda: "(all 60 images)" in window.layers_dock.windowTitle(), timeout=60000)  # views follow
    assert [spot.data() for spot in window.plot.scatter.points()] == [point.id]
    hollow = {spot.data(): (spot.symbol(), spot.brush().color().alpha()) for spot in window.plot.elsewhere.points()}
    assert hollow == {full.id: ("d", 0), full_original.id: ("star", 0)}
    if os.environ.get("SQUEEZESTUDIO_SCREENSHOTS"):
        window.grab().save(os.environ["SQUEEZESTUDIO_SCREENSHOTS"])
    window.window_actions["measure_all"].trigger()  # nothing left to measure: it says so, adds nothing
    assert "already measured on all 60 images" in window.message_label.text()
    assert len(window.session.experiments) == 4


def test_the_subset_size_is_set_in_a_dialog_and_remembered(qtbot, tmp_path):
    settings = AppSettings(make_settings(str(tmp_path / "s.ini")))
    assert settings.interactive_limit() == 1000  # the core's default
    window = _window(qtbot, settings)
    window.runner.evaluate_original()
    _wait_for(qtbot, window, 1)
    assert window.session.experiments.original().metric("images") == 60  # 60 < 1000: everything
    window.window_actions["measure_all"].trigger()
    assert "already measured on all 60 images" in window.message_label.text()

    window.window_actions["subset"].trigger()
    dialog = window.subset_dialog
    assert dialog.isVisible() and dialog.spin.value() == 1000
    dialog.spin.setValue(30)
    dialog.accept()
    assert window.session.interactive_limit == 30
    _wait_for(qtbot, window, 2)  # the original again, on the new subset
    assert window.session.experiments.list()[-1].metric("images") == 30
    assert "30 of 60 images" in window.plot.summary.text()
    again = AppSettings(make_settings(str(tmp_path / "s.ini")))
    assert again.interactive_limit() == 30
    window.window_actions["subset"].trigger()
    assert window.subset_dialog.spin.value() == 30
    window.subset_dialog.spin.setValue(0)
    assert window.subset_dialog.spin.text() == "all images"
    window.subset_dialog.accept()
    assert window.session.interactive_limit is None and again.interactive_limit() == 0


def test_measuring_on_all_images_can_be_cancelled(qtbot, app_settings):
    app_settings.set_interactive_limit(20)
    window = _window(qtbot, app_settings)
    window.runner.evaluate_original()
    _wait_for(qtbot, window, 1)
    window.plot.set_current(window.session.experiments.original().id)
    assert window.window_actions["measure_all"].text() == "Measure on &all images"
    measure = window.session.evaluate_recipe

    def held_until_cancelled(*args, **kwargs):
        # 60 tiny images measure in milliseconds: hold the job (for at most 20 s) until Esc has reached its
        # token, so the test checks the cancel path rather than racing the measurement.
        token = args[2] if len(args) > 2 else kwargs.get("cancel")
        deadline = time.monotonic() + 20
        while token is not None and not token.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        return measure(*args, **kwargs)

    window.session.evaluate_recipe = held_until_cancelled
    window.window_actions["measure_all"].trigger()
    job = window.jobs.current("all_images")
    assert job is not None and "Measuring original on all 60 images" in window.message_label.text()
    window.window_actions["cancel"].trigger()  # Esc
    qtbot.waitUntil(lambda: job.done, timeout=30000)
    qtbot.waitUntil(lambda: "Cancelled" in window.message_label.text(), timeout=5000)
    assert len(window.session.experiments) == 1 and window.jobs.current("all_images") is None


def test_a_retrained_point_on_all_images_is_its_own_model(qtbot, app_settings):
    app_settings.set_interactive_limit(20)
    window = _window(qtbot, app_settings)
    window.session.set_training_data(ImageDataset(images=torch.randn(40, 1, 8, 8), labels=torch.arange(40) % 4,
                                                  class_names=list("abcd")), "random-train")
    retrain = dict(PRUNE, finetune={"epochs": 1, "lr": 0.01, "seed": 0})
    window.session.set_recipe(recipe_from_dict(retrain))
    window.runner.evaluate(window.session.recipe)
    _wait_for(qtbot, window, 1)
    (point,) = window.session.experiments.list()
    # another training set now: the recipe run again would train another network than the point's
    window.session.set_training_data(ImageDataset(images=torch.randn(40, 1, 8, 8), labels=torch.arange(40) % 4,
                                                  class_names=list("abcd")), "other-train")
    window.plot.set_current(point.id)
    window.window_actions["measure_all"].trigger()
    _wait_for(qtbot, window, 3)
    full = window.session.experiments.list()[-1]
    assert full.metric("images") == 60 and full.size_bytes == point.size_bytes
    mine, theirs = point.compressed.handle.module.state_dict(), full.compressed.handle.module.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)  # not trained again on the way
