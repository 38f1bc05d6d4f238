"""A model opened without data says in the window what to do next, and offers the digits when they fit."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.io.loading import save_safetensors
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_main_window import QtMainWindow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {}
    for name, classes in (("ten", 10), ("three", 3)):
        out[name] = folder / f"lenet_{name}.safetensors"
        save_safetensors(zoo_handle("lenet5", num_classes=classes, in_channels=1, input_size=32), out[name])
    out["bare"] = folder / "bare.pt"  # a bare state_dict: its input size and normalisation are guesses
    torch.save(zoo_handle("resnet18", num_classes=10, in_channels=3, input_size=32).module.state_dict(), out["bare"])
    return out


@pytest.fixture
def window(qtbot, app_settings, toy_methods):
    w = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings, methods=toy_methods)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.jobs.shutdown()


def _open(qtbot, window, path, **options):
    window.open_model(str(path), options=options)
    qtbot.waitUntil(lambda: window.session.handle is not None and window.next_step.isVisible(), timeout=30000)


def test_right_after_opening_without_data_the_window_says_what_to_do(qtbot, window, models):
    assert not window.next_step.isVisible()  # nothing open yet
    _open(qtbot, window, models["ten"])
    text = window.next_step.label.text()
    assert text.startswith("No data set is open") and "File > Open data" in text
    assert "digits fit this model" in text and "32x32" in text
    assert window.next_step.digits_button.isVisible() and window.next_step.data_button.isVisible()
    assert window.session.experiments.original() is None  # nothing could be measured without data
    window.next_step.digits_button.click()
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=30000)
    assert window.session.data_source == "digits" and not window.next_step.isVisible()


def test_no_digits_for_a_model_without_ten_outputs(qtbot, window, models):
    _open(qtbot, window, models["three"])
    assert "No data set is open" in window.next_step.label.text()
    assert "digits" not in window.next_step.label.text() and not window.next_step.digits_button.isVisible()


def test_a_guessed_preprocessing_points_to_the_model_input_dialog_and_can_be_hidden(qtbot, window, models):
    _open(qtbot, window, models["bare"], arch="resnet18")
    text = window.next_step.label.text()
    assert "input was guessed" in text and "Model input" in text and window.next_step.input_button.isVisible()
    assert window.next_step.digits_button.isVisible()  # 10 outputs, 3x224x224: the digits are resized to it
    opened = []

    def answer(dialog):
        opened.append(dialog)
        dialog.input_size.setText("32,32")
        dialog.accept()
        qtbot.waitUntil(lambda: not dialog.checking, timeout=30000)  # the model runs in the dialog's worker
        return dialog.result()

    window.exec_dialog = answer
    window.next_step.input_button.click()
    assert opened and opened[0].windowTitle() == "Model input"
    assert window.session.handle.input_spec.height == 32
    qtbot.waitUntil(lambda: "guessed" not in window.next_step.label.text(), timeout=10000)
    assert window.next_step.isVisible() and "No data set is open" in window.next_step.label.text()
    window.next_step.dismiss()
    assert not window.next_step.isVisible()
    window.next_step.refresh()
    assert not window.next_step.isVisible()  # stays hidden for this model
