"""Method controls: exclusive methods untick each other; an unticked method keeps its settings."""

from __future__ import annotations

from squeezestudio.gui.qt_method_controls import QtMethodControls


def test_kmeans_and_quantization_are_exclusive_and_untick_keeps_settings(qtbot):
    controls = QtMethodControls(debounce_ms=0)
    qtbot.addWidget(controls)
    controls.groups["cluster"].setChecked(True)
    controls.groups["quantize"].setChecked(True)
    assert not controls.groups["cluster"].isChecked()  # ticking quantize unticked k-means
    assert "Not together with" in controls.groups["quantize"].toolTip()
    controls.groups["prune"].setChecked(True)
    controls.forms["prune"].set_values({"sparsity": 0.8})
    settings = controls.forms["prune"].values()
    controls.groups["prune"].setChecked(False)
    controls.set_recipe_dict(controls.recipe_dict())  # the window shows the recipe back after every change
    controls.groups["prune"].setChecked(True)
    assert controls.forms["prune"].values() == settings
    assert controls.recipe_dict()["methods"]["prune"]["sparsity"] == 0.8
