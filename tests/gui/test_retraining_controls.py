"""The Retraining group: the recipe's finetune section through the debounced recipe path, undo, session notes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from squeezestudio.cli.cmd_compress import finetune_section
from squeezestudio.core.measure.measure_recipe import retrain_config
from squeezestudio.core.session.studio_session import StudioSession, recipe_to_dict
from squeezestudio.core.training.retrain_defaults import RETRAIN_DEFAULTS
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_method_controls import QtMethodControls
from squeezestudio.gui.qt_retraining_controls import QtRetrainingControls
from squeezestudio.core.compression.registry import default_registry


@pytest.fixture
def controls(qtbot, toy_methods):
    torch.manual_seed(0)
    widget = QtMethodControls(toy_methods, debounce_ms=30)
    qtbot.addWidget(widget)
    widget.show()
    return widget


class _DataSet(SimpleNamespace):
    """A stand-in for a loaded data set: a name and a length (the session counts its images)."""

    def __len__(self) -> int:
        return 10


def test_epochs_zero_is_off_and_distillation_adds_its_knobs(qtbot):
    group = QtRetrainingControls()
    qtbot.addWidget(group)
    assert group.finetune_dict() is None and not group.lr.isEnabled()
    group.epochs.setValue(3)
    group.lr.setValue(0.002)
    assert group.finetune_dict() == {"epochs": 3, "lr": pytest.approx(0.002), "seed": 0, "shift_augment": 1}
    assert group.lr.isEnabled() and not group.temperature.isEnabled()
    group.distill.setChecked(True)
    group.temperature.setValue(2.0)
    group.alpha.setValue(0.25)
    assert group.temperature.isEnabled()
    assert group.finetune_dict() == {"epochs": 3, "lr": pytest.approx(0.002), "seed": 0, "shift_augment": 1,
                                     "distill_temperature": 2.0, "distill_alpha": 0.25}
    for widget in (group.epochs, group.lr, group.distill, group.temperature, group.alpha, group.open_button):
        assert widget.toolTip().endswith(".") and widget.toolTip().count(". ") == 0  # one sentence
    assert "pruned weights at zero" in group.epochs.toolTip()


def test_the_gui_and_the_cli_write_the_same_section_for_the_same_settings(qtbot):
    group = QtRetrainingControls()
    qtbot.addWidget(group)
    group.epochs.setValue(2)
    flags = SimpleNamespace(finetune=2, lr=RETRAIN_DEFAULTS.lr, seed=RETRAIN_DEFAULTS.seed, distill=None)
    assert group.finetune_dict() == finetune_section(flags)
    group.distill.setChecked(True)  # the GUI's shown temperature and weight are the defaults
    flags.distill = f"{RETRAIN_DEFAULTS.distill_temperature}"  # the CLI's weight defaults the same way
    assert group.finetune_dict() == finetune_section(flags)
    config = retrain_config({"finetune": {"epochs": 2}})  # a hand-written section means the same run
    assert config == retrain_config({"finetune": finetune_section(SimpleNamespace(
        finetune=2, lr=RETRAIN_DEFAULTS.lr, seed=RETRAIN_DEFAULTS.seed, distill=None))})
    assert (config.lr, config.shift_augment) == (RETRAIN_DEFAULTS.lr, RETRAIN_DEFAULTS.shift_augment)


def test_showing_a_section_is_quiet_and_keeps_unshown_options(qtbot):
    group = QtRetrainingControls()
    qtbot.addWidget(group)
    seen = []
    group.changed.connect(lambda: seen.append(True))
    section = {"epochs": 2, "lr": 0.001, "seed": 7, "fraction": 0.5, "distill_temperature": 3.0,
               "distill_alpha": 0.4}
    group.set_finetune_dict(section)
    assert seen == [] and group.finetune_dict() == {**section, "shift_augment": 1}
    group.set_finetune_dict(None)
    assert group.finetune_dict() is None and group.distill.isChecked() is False
    group.epochs.setValue(1)
    assert seen == [True]


def test_setting_epochs_puts_finetune_into_the_emitted_recipe(qtbot, controls):
    seen = []
    controls.recipeChanged.connect(seen.append)
    controls.groups["prune"].setChecked(True)
    controls.retraining.epochs.setValue(1)
    controls.retraining.epochs.setValue(2)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=2000)
    qtbot.wait(60)
    assert len(seen) == 1
    assert seen[0]["finetune"] == {"epochs": 2, "lr": pytest.approx(5e-4), "seed": 0, "shift_augment": 1}
    assert seen[0]["methods"] == {"prune": {"sparsity": pytest.approx(0.5)}}
    controls.retraining.epochs.setValue(0)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=2000)
    assert "finetune" not in seen[1]
    controls.set_recipe_dict(seen[0])
    assert controls.recipe_dict() == seen[0] and controls.retraining.epochs.value() == 2


def test_undo_and_point_restore_bring_retraining_back(qtbot, app_settings, toy_methods):
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings, methods=toy_methods)
    qtbot.addWidget(window)
    try:
        group = window.controls.retraining
        group.epochs.setValue(4)
        window.controls.flush()
        assert recipe_to_dict(window.session.recipe)["finetune"]["epochs"] == 4
        group.distill.setChecked(True)
        window.controls.flush()
        assert "distill_temperature" in recipe_to_dict(window.session.recipe)["finetune"]
        group.epochs.setValue(0)
        window.controls.flush()
        assert "finetune" not in recipe_to_dict(window.session.recipe)
        window.undo()
        assert group.epochs.value() == 4 and group.distill.isChecked()
        window.undo()
        assert group.epochs.value() == 4 and not group.distill.isChecked()
        window.redo()
        window.redo()
        assert group.epochs.value() == 0
    finally:
        window.jobs.shutdown()


def test_note_follows_the_session_and_opens_a_training_set(qtbot, controls):
    loads = []

    def data_loader(source, handle):
        loads.append(source)
        return _DataSet(name=source)

    session = StudioSession(model_loader=lambda p, trust=False: SimpleNamespace(module=object(), name="m"),
                            data_loader=data_loader, registry=default_registry())
    session.open_model("m.pt")
    controls.attach_session(session)
    assert "needs a training set" in controls.retraining.note.text()
    session.open_data("digits")
    assert controls.retraining.note.text().startswith("Retrains on digits:train")
    assert controls.retraining.open_button.isHidden()
    session.open_data("/eval")
    assert "needs a training set" in controls.retraining.note.text()
    controls.retraining.trainingDataRequested.emit("/train")
    assert not controls.retraining.open_button.isHidden()
    assert session.train_source == "/train" and loads[-1] == "/train"
    assert controls.retraining.note.text() == "Retrains on /train; accuracy is measured on /eval."
