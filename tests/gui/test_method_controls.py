"""Controls generated from a toy method config; debounced recipe changes; layer overrides."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSlider, QSpinBox

from squeezestudio.core.compression.config import param
from squeezestudio.gui.qt_method_controls import QtMethodControls


@dataclass
class ToyConfig:
    amount: float = param(0.5, minimum=0.0, maximum=1.0, help="How much to squeeze.")
    bits: int = param(5, minimum=1, maximum=8, help="Bits per weight.")
    entropy: bool = param(True, help="Entropy-code the result.")
    mode: str = param("linear", choices=("linear", "density", "random"), help="Initialisation.")
    note: str = param("", help="Free text.")
    threshold: float = param(None, minimum=0.0, optional=True, help="Optional cut-off.")


class ToyMethod:
    name = "toy"
    label = "Toy squeeze"
    description = "A toy method used to test generated controls."
    config_class = ToyConfig


class OtherMethod:
    name = "other"
    label = "Other"
    description = "Second toy method."

    @dataclass
    class config_class:  # noqa: N801 - mirrors the method attribute
        level: int = param(2, minimum=0, maximum=9, help="Level.")


@pytest.fixture
def controls(qtbot):
    torch.manual_seed(0)
    widget = QtMethodControls([ToyMethod(), OtherMethod()], debounce_ms=30)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_widgets_follow_the_param_kinds(controls):
    editors = controls.forms["toy"].editors
    assert isinstance(editors["amount"].editor, QDoubleSpinBox) and isinstance(editors["amount"].slider, QSlider)
    assert isinstance(editors["bits"].editor, QSpinBox) and editors["bits"].editor.maximum() == 8
    assert isinstance(editors["entropy"].editor, QCheckBox)
    assert isinstance(editors["mode"].editor, QComboBox) and editors["mode"].editor.count() == 3
    assert isinstance(editors["note"].editor, QLineEdit)
    assert editors["threshold"].set_box is not None and editors["threshold"].value() is None
    assert editors["bits"].toolTip() == "Bits per weight."
    assert controls.groups["toy"].toolTip() == ToyMethod.description
    assert controls.recipe_dict() == {"version": 1, "methods": {}, "layers": {}}


def test_one_debounced_emission_for_many_changes(qtbot, controls):
    seen = []
    controls.recipeChanged.connect(seen.append)
    controls.groups["toy"].setChecked(True)
    slider = controls.forms["toy"].editors["amount"].slider
    for position in (100, 300, 500, 700, 900):
        slider.setValue(position)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=2000)
    qtbot.wait(80)
    assert len(seen) == 1
    toy = seen[0]["methods"]["toy"]
    assert toy["amount"] == pytest.approx(0.9)
    assert toy == {"amount": pytest.approx(0.9), "bits": 5, "entropy": True, "mode": "linear", "note": "",
                   "threshold": None}


def test_optional_value_and_choice(controls):
    controls.groups["toy"].setChecked(True)
    editors = controls.forms["toy"].editors
    editors["threshold"].set_box.setChecked(True)
    editors["threshold"].editor.setValue(0.25)
    editors["mode"].editor.setCurrentIndex(2)
    values = controls.recipe_dict()["methods"]["toy"]
    assert values["threshold"] == pytest.approx(0.25) and values["mode"] == "random"


def test_layer_overrides_and_round_trip(qtbot, controls):
    seen = []
    controls.recipeChanged.connect(seen.append)
    controls.groups["toy"].setChecked(True)
    controls.set_layer("features.0")
    assert "features.0" in controls.layer_box.title()
    mode = controls.layer_modes["toy"]
    mode.setCurrentIndex(mode.findData("custom"))
    assert controls.layer_forms["toy"].isVisible()
    controls.layer_forms["toy"].editors["bits"].editor.setValue(3)
    other = controls.layer_modes["other"]
    other.setCurrentIndex(other.findData("disable"))
    controls.flush()
    recipe = seen[-1]
    assert recipe["layers"]["features.0"]["toy"]["bits"] == 3
    assert recipe["layers"]["features.0"]["other"] is None

    controls.set_layer("classifier")
    assert controls.layer_modes["toy"].currentData() == "inherit"
    assert not controls.layer_forms["toy"].isVisible()

    fresh = QtMethodControls([ToyMethod(), OtherMethod()], debounce_ms=30)
    qtbot.addWidget(fresh)
    emitted = []
    fresh.recipeChanged.connect(emitted.append)
    fresh.set_recipe_dict(recipe)
    assert fresh.recipe_dict() == recipe
    fresh.set_layer("features.0")
    assert fresh.layer_modes["other"].currentData() == "disable"
    qtbot.wait(80)
    assert emitted == []  # showing a recipe is not a change
