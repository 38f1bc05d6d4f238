"""File > Model input…: fields, a preview through the core's preprocessing, one sentence when wrong."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.io.loading import save_safetensors
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_model_input_dialog import QtModelInputDialog, sample_image_path


def _model(folder, channels):
    torch.manual_seed(0)
    path = folder / f"lenet{channels}.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=channels, input_size=32), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {1: _model(folder, 1), 3: _model(folder, 3)}


@pytest.fixture
def red_sample(tmp_path):
    path = tmp_path / "red.png"
    Image.fromarray(np.full((40, 60, 3), (250, 10, 10), dtype=np.uint8)).save(path)
    return path


def _session(path):
    session = StudioSession(registry=default_registry())
    session.open_model(path)
    return session


def _ok(dialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_the_fields_show_the_model_and_bad_input_is_one_sentence_with_ok_disabled(qtbot, models, red_sample):
    dialog = QtModelInputDialog(_session(models[1]), red_sample)
    qtbot.addWidget(dialog)
    assert dialog.input_size.text() == "32,32" and dialog.error == "" and _ok(dialog).isEnabled()
    assert not dialog.layout_box.isEnabled()  # a PyTorch model's layout is its own code
    cases = [
        (lambda: dialog.mean.setText("dark"), "Mean must be numbers such as 0.5"),
        (lambda: dialog.mean.setText("0.5,0.5,0.5"), "The mean has 3 values but the model takes 1 channel(s)."),
        (lambda: (dialog.mean.setText("0.5"), dialog.resize_mode.setCurrentIndex(1), dialog.resize.setText("20")),
         "The center crop 32x32 is larger than the resize (shorter side to 20)"),
    ]
    for change, sentence in cases:
        change()
        assert dialog.error.startswith(sentence) and "\n" not in dialog.error
        assert dialog.message.text() == dialog.error and not _ok(dialog).isEnabled()
    dialog.resize.setText("36")
    assert dialog.error == "" and _ok(dialog).isEnabled()
    assert dialog.raw()["resize"] == "36" and dialog.caption.text().startswith("red.png: 1x32x32")


def _checked(qtbot, dialog):
    """Wait for OK's check of the model (it runs in a worker)."""
    qtbot.waitUntil(lambda: not dialog.checking, timeout=30000)


def test_a_size_the_model_cannot_take_keeps_the_dialog_open(qtbot, models, red_sample):
    dialog = QtModelInputDialog(_session(models[1]), red_sample)
    qtbot.addWidget(dialog)
    dialog.input_size.setText("40,40")
    assert _ok(dialog).isEnabled()  # consistent fields; only running the model shows it cannot take them
    dialog.accept()
    _checked(qtbot, dialog)
    assert dialog.result() != QDialog.DialogCode.Accepted and dialog.result_handle is None
    assert "40x40" in dialog.error and not _ok(dialog).isEnabled()
    assert dialog.message.text() == dialog.error and dialog.input_size.isEnabled()  # fix it and try again


def test_ok_runs_the_model_off_the_gui_thread(qtbot, models, red_sample):
    session = _session(models[1])
    dialog = QtModelInputDialog(session, red_sample)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.mean.setText("0.4")
    dialog.accept()
    # accept() returned at once: the model runs in the dialog's worker, OK and the fields wait for it
    assert dialog.checking and dialog.jobs.current("model_input") is not None
    assert not _ok(dialog).isEnabled() and not dialog.mean.isEnabled() and dialog.isVisible()
    assert dialog.message.text() == "Running the model once on the new input…"
    dialog.accept()  # a second OK while checking starts nothing
    _checked(qtbot, dialog)
    assert dialog.result() == QDialog.DialogCode.Accepted and not dialog.isVisible()
    assert dialog.result_handle.input_spec.mean == (0.4,) and session.handle.input_spec.mean != (0.4,)


def test_cancel_while_checking_drops_the_check(qtbot, models, red_sample):
    dialog = QtModelInputDialog(_session(models[1]), red_sample)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.accept()
    job = dialog.jobs.current("model_input")
    deadline = time.monotonic() + 30
    while not job.done and time.monotonic() < deadline:  # no event processing: its answer waits in the queue
        time.sleep(0.01)
    assert job.done
    dialog.reject()  # Cancel pressed before the answer arrived
    qtbot.wait(50)  # now it arrives, and is dropped
    assert dialog.result() == QDialog.DialogCode.Rejected and dialog.result_handle is None
    assert not dialog.isVisible() and not dialog.checking


def _onnx_file(module: torch.nn.Module, shape: tuple[int, ...], path):
    """``module`` exported to ONNX at ``path`` with one input of ``shape`` (the legacy exporter, quietly)."""
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(*shape),), buffer, dynamo=False,
                          input_names=["image"], output_names=["scores"])
    path.write_bytes(buffer.getvalue())
    return path


def test_switching_an_onnx_layout_shows_the_size_the_file_declares_in_it(qtbot, tmp_path, red_sample):

    class ChannelsLast(torch.nn.Module):  # takes [N, H, W, 3]; at 3x8 pixels, [N, 3, 8, 3] reads as NCHW too
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head = torch.nn.Linear(4 * 3 * 8, 10)

        def forward(self, x):
            return self.head(torch.flatten(torch.relu(self.conv(x.permute(0, 3, 1, 2))), 1))

    torch.manual_seed(0)
    session = _session(_onnx_file(ChannelsLast(), (1, 3, 8, 3), tmp_path / "channels_last.onnx"))
    dialog = QtModelInputDialog(session, red_sample)
    qtbot.addWidget(dialog)
    assert dialog.layout_box.isEnabled() and dialog.input_size.text() == "8,3"  # read as NCHW: 3 channels of 8x3
    dialog.layout_box.setCurrentIndex(1)  # NHWC: 3x8 images of 3 channels
    assert dialog.input_size.text() == "3,8" and dialog.error == "" and _ok(dialog).isEnabled()
    dialog.accept()
    _checked(qtbot, dialog)
    assert dialog.result() == QDialog.DialogCode.Accepted, dialog.error
    new = dialog.result_handle
    assert new.input_spec.layout == "nhwc" and new.input_spec.file_shape() == (1, 3, 8, 3)
    dialog = QtModelInputDialog(session, red_sample)  # and back
    qtbot.addWidget(dialog)
    dialog.layout_box.setCurrentIndex(1)
    dialog.layout_box.setCurrentIndex(0)
    assert dialog.input_size.text() == "8,3"


def test_the_preview_is_the_sample_as_the_model_sees_it(qtbot, models, red_sample):
    dialog = QtModelInputDialog(_session(models[3]), red_sample)
    qtbot.addWidget(dialog)
    rgb = dialog.preview.pixmap().toImage().pixelColor(5, 5)
    assert (rgb.red(), rgb.blue()) == (250, 10)
    dialog.order.setCurrentIndex(1)  # BGR: the first channel fed is blue
    bgr = dialog.preview.pixmap().toImage().pixelColor(5, 5)
    assert (bgr.red(), bgr.blue()) == (10, 250) and "BGR" in dialog.caption.text()
    dialog.grayscale.setChecked(True)
    gray = dialog.preview.pixmap().toImage().pixelColor(5, 5)
    assert gray.red() == gray.green() == gray.blue()
    dialog.pixel_scale.setCurrentIndex(1)  # 0..255: the ImageNet mean/std scale with it, the values too
    assert "values" in dialog.caption.text()


def test_the_sample_is_the_data_sets_first_file_else_a_bundled_one(models, red_sample):
    session = _session(models[1])
    assert sample_image_path(session).suffix == ".png" and sample_image_path(session).exists()
    session.data = type("Data", (), {"paths": [str(red_sample)], "__len__": lambda self: 1})()
    assert sample_image_path(session) == red_sample


@pytest.fixture
def window(qtbot, app_settings, toy_methods):
    w = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings, methods=toy_methods)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.jobs.shutdown()


def test_ok_applies_the_input_and_measures_the_original_again(qtbot, window, models):
    window.session.data_source = "digits"
    window.open_model(str(models[1]), options={"preprocess": {"mean": (0.3,)}})  # as `gui MODEL --mean 0.3`
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=30000)
    assert window.session.handle.input_spec.mean == (0.3,)
    first = window.session.experiments.original()
    answered = []

    def answer(dialog):
        dialog.mean.setText("0.9")
        dialog.std.setText("0.1")
        dialog.accept()
        _checked(qtbot, dialog)
        answered.append(dialog)
        return dialog.result()

    window.exec_dialog = answer
    action = window.window_actions["model_input"]
    assert action in window.menuBar().actions()[0].menu().actions()
    action.trigger()
    assert answered and window.session.handle is answered[0].result_handle
    assert window.session.handle.input_spec.mean == (0.9,) and window.session.handle.input_spec.std == (0.1,)
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=30000)
    again = window.session.experiments.original()
    assert again.id != first.id and window.session.data is not None
    assert again.metric("top1") != first.metric("top1") or again.metric("loss") != first.metric("loss")


def test_unsaved_points_are_not_dropped_without_asking(qtbot, window, models):
    from squeezestudio.core.session.studio_session import recipe_from_dict

    window.session.data_source = "digits"
    window.open_model(str(models[1]))
    log = window.session.experiments
    qtbot.waitUntil(lambda: log.original() is not None, timeout=30000)
    window.session.set_recipe(recipe_from_dict({"version": 1, "methods": {"prune": {"sparsity": 0.5}}}))
    window.runner.evaluate(window.session.recipe)
    qtbot.waitUntil(lambda: len(log) == 2, timeout=30000)
    asked = []
    window.ask_yes_no = lambda title, text: asked.append(text) or False
    handle = window.session.handle

    def answer(dialog):
        dialog.mean.setText("0.9")
        dialog.accept()
        _checked(qtbot, dialog)
        return dialog.result()

    window.exec_dialog = answer
    window.ask_model_input()
    assert asked and "1 experiment(s)" in asked[0] and "measure again with the new input" in asked[0]
    assert window.session.handle is handle and len(log) == 2 and handle.input_spec.mean != (0.9,)


def test_switching_the_layout_shows_the_channels_the_file_declares_in_it(qtbot, tmp_path, red_sample):
    class Gray(torch.nn.Module):  # an NCHW file of 1x6x6 images; read as NHWC it would be 6 channels
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.head = torch.nn.Linear(2 * 4 * 4, 10)

        def forward(self, x):
            return self.head(torch.flatten(torch.relu(self.conv(x)), 1))

    dialog = QtModelInputDialog(_session(_onnx_file(Gray(), (1, 1, 6, 6), tmp_path / "gray.onnx")), red_sample)
    qtbot.addWidget(dialog)
    assert "takes 1 channel(s)" in dialog.header.text() and "(1)" in dialog.mean.toolTip()
    dialog.layout_box.setCurrentIndex(1)
    assert "takes 6 channel(s)" in dialog.header.text() and "(6)" in dialog.std.toolTip()
    assert not dialog.order.isEnabled()
    dialog.layout_box.setCurrentIndex(0)
    assert "takes 1 channel(s)" in dialog.header.text()
