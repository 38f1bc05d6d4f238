"""Window flows on real core functions: trust, export sizes, classify, autosave restore, cancel, demo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from squeezestudio.core.session.experiments import Experiment
from squeezestudio.core.session.studio_session import StudioSession, find_autosave
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_screenshots import drop_files
from squeezestudio.core.compression.registry import default_registry


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    from squeezestudio.core.io.loading import save_safetensors
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "lenet.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32), path)
    return path


def _window(qtbot, settings):
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=settings)
    qtbot.addWidget(window)
    window.show()
    return window


def _open_with_digits(qtbot, window, path):
    window.session.data_source = "digits"
    window.open_model(str(path))
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=60000)


def _evaluate(qtbot, window, recipe):
    from squeezestudio.core.session.studio_session import recipe_from_dict

    log = window.session.experiments
    before = len(log)
    window.session.set_recipe(recipe_from_dict(recipe))
    window.runner.evaluate(window.session.recipe)
    qtbot.waitUntil(lambda: len(log) > before, timeout=60000)
    return log.list()[-1]


PRUNE_CLUSTER = {"version": 1, "methods": {"prune": {"sparsity": 0.7}, "cluster": {"bits": 4}}, "layers": {}}


class _Evil:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _answer_trust_box(key, seen):
    """Press ``key`` on the trust box once it is shown modally (the real ``exec`` path)."""
    tries = iter(range(3000))

    def attempt():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.isVisible():
            seen.append(box.text())
            QTest.keyClick(box, key)
        elif next(tries, None) is not None:
            QTimer.singleShot(10, attempt)
    QTimer.singleShot(0, attempt)


@pytest.mark.parametrize("key", [Qt.Key.Key_Return, Qt.Key.Key_Escape])
def test_untrusted_pickle_is_never_loaded_without_yes(qtbot, app_settings, tmp_path, key):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"weights": _Evil(str(marker))}, evil)
    window = _window(qtbot, app_settings)
    seen = []
    _answer_trust_box(key, seen)
    window.open_model(str(evil))
    qtbot.waitUntil(lambda: "not trusted" in window.message_label.text(), timeout=30000)
    assert seen and "evil.pt" in seen[0]  # the question was asked, naming the file
    assert not marker.exists()
    assert window.session.handle is None
    window.jobs.shutdown()


def test_untrusted_pickle_loads_only_after_open_anyway(qtbot, app_settings, tmp_path, lenet_file):
    """The same path with "Open anyway" does load (so the No test above is not vacuous)."""
    from squeezestudio.core.io.loading import load_model

    handle = load_model(lenet_file, registry=default_registry())
    pickled = tmp_path / "whole_model.pt"
    torch.save(handle.module, pickled)
    window = _window(qtbot, app_settings)
    tries = iter(range(3000))

    def click_open():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.isVisible():
            [button] = [b for b in box.buttons() if b.text() == "Open anyway"]
            button.click()
        elif next(tries, None) is not None:
            QTimer.singleShot(10, click_open)
    QTimer.singleShot(0, click_open)
    window.open_model(str(pickled))
    qtbot.waitUntil(lambda: window.session.handle is not None or bool(window.last_error[0]), timeout=30000)
    assert window.session.handle is not None, window.last_error
    assert window.session.model_path == str(pickled)
    window.jobs.shutdown()


def test_export_writes_the_size_shown_on_the_plot(qtbot, app_settings, tmp_path, lenet_file):
    window = _window(qtbot, app_settings)
    _open_with_digits(qtbot, window, lenet_file)
    point = _evaluate(qtbot, window, PRUNE_CLUSTER)
    assert window.plot.current_id == point.id
    outcomes = []

    def answer(dialog):
        dialog.set_folder(tmp_path)
        dialog.set_base_name("small")
        dialog.set_selected_formats(["sqz", "onnx", "onnx-int8", "report_json"])
        outcomes.extend(dialog.export_now())
        return 0
    window.exec_dialog = answer
    window.window_actions["export"].trigger()
    by_fmt = {o.fmt: o for o in outcomes}
    sqz = tmp_path / "small.sqz"
    assert sqz.stat().st_size == point.size_bytes  # the plot's number is the file's length
    assert by_fmt["sqz"].ok and by_fmt["sqz"].status() == "Written; same size as shown on the plot"
    assert by_fmt["onnx"].ok and by_fmt["onnx"].disk_bytes == (tmp_path / "small.onnx").stat().st_size
    # the int8 file is calibrated on the training split and is a fraction of the float file
    assert by_fmt["onnx-int8"].ok, by_fmt["onnx-int8"].status()
    assert by_fmt["onnx-int8"].disk_bytes <= 0.3 * by_fmt["onnx"].disk_bytes
    rows = {window.export_dialog.table.item(r, 0).text(): window.export_dialog.table.item(r, 1).text()
            for r in range(window.export_dialog.table.rowCount())}
    assert rows["small.sqz"] == f"{point.size_bytes:,}"
    from squeezestudio.core.compression.codec import load_sqz
    assert set(load_sqz(sqz, registry=default_registry()).encodings) == set(point.compressed.encodings)
    window.jobs.shutdown()


def test_dropped_images_get_predictions_from_both_models(qtbot, app_settings, tmp_path, lenet_file):
    from squeezestudio.core.data.digits import digits_as_images

    window = _window(qtbot, app_settings)
    _open_with_digits(qtbot, window, lenet_file)
    _evaluate(qtbot, window, PRUNE_CLUSTER)
    paths = []
    for i, (name, image) in enumerate(digits_as_images(2)):
        paths.append(tmp_path / f"{name}_{i}.png")
        image.save(paths[-1])
    window.tabs.setCurrentIndex(1)
    view = window.classify_view
    drop_files(view, paths)
    qtbot.waitUntil(lambda: len(view.results()) == 2 and not view.is_busy(), timeout=30000)
    for result in view.results():
        assert result.error is None
        assert set(result.top) == {"original", "compressed"}
        assert all(len(preds) == 5 for preds in result.top.values())
    window.jobs.shutdown()


def test_cancel_stops_the_evaluation_and_adds_no_point(qtbot, app_settings, lenet_file):
    window = _window(qtbot, app_settings)
    _open_with_digits(qtbot, window, lenet_file)
    log = window.session.experiments
    window.session.set_recipe(None)
    window.runner.evaluate({"version": 1, "methods": {"quantize": {"bits": 3}}, "layers": {}})
    job = window.jobs.current("evaluate")
    assert job is not None
    window.window_actions["cancel"].trigger()
    qtbot.waitUntil(lambda: job.done, timeout=30000)
    qtbot.wait(100)
    assert len(log) == 1 and window.jobs.current("evaluate") is None
    window.jobs.shutdown()


def test_autosave_newer_than_clean_exit_is_offered_with_its_time(qtbot, app_settings, tmp_path, lenet_file):
    from squeezestudio.gui.qt_autosave_bar import needs_offer

    first = _window(qtbot, app_settings)
    first.open_model(str(lenet_file))
    qtbot.waitUntil(lambda: first.session.handle is not None, timeout=30000)
    first.session.experiments.append(Experiment("a", PRUNE_CLUSTER, "prune+cluster", 4321, {"top1": 0.5}))
    first.autosave()  # ...and then the process "crashes": no clean exit is recorded
    first.jobs.shutdown()
    info = find_autosave()
    assert info is not None and needs_offer(info, app_settings.last_clean_exit())

    second = _window(qtbot, app_settings)
    bar = second.offer_autosave()
    assert bar is not None and bar.isVisible()
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(info.timestamp)) in bar.label.text()
    bar.restore_button.click()
    assert second.session.experiments.find("a").size_bytes == 4321
    assert second.session.model_path == str(lenet_file)
    assert not bar.isVisible()
    second.close()  # a clean exit: the next start offers nothing
    third = _window(qtbot, app_settings)
    assert third.offer_autosave() is None
    third.jobs.shutdown()


def test_bundled_demo_opens_and_gets_its_original_point(qtbot, app_settings):
    from squeezestudio.core.io.demo_files import DEMO_DATA, demo_model_path

    window = _window(qtbot, app_settings)
    window.session.data_source = DEMO_DATA
    window.open_model(str(demo_model_path()))
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=120000)
    original = window.session.experiments.original()
    assert original.metric("top1") > 0.9  # the demo model is trained
    assert len(window.plot.original.data) == 1
    assert "squeezenet" in window.windowTitle().lower()
    window.jobs.shutdown()


def test_screenshot_command_is_a_cli_subcommand():
    from squeezestudio.cli import cmd_screenshot
    import argparse

    parser = argparse.ArgumentParser()
    cmd_screenshot.add_parser(parser.add_subparsers())
    args = parser.parse_args(["screenshot", "out", "m.safetensors", "--data", "digits"])
    assert (args.out_dir, args.model, args.data, args.func) == ("out", "m.safetensors", "digits", cmd_screenshot.run)
