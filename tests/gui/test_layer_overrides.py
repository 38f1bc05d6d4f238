"""Per-layer overrides in the window: several layers at once, marked in the table and chart, panel in the Layers dock."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QItemSelectionModel, Qt

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_export_wiring import dense_notes
from squeezestudio.gui.qt_layer_view import OVERRIDE_MARK
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_method_controls import CUSTOM, DISABLE


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from squeezestudio.core.io.loading import save_safetensors
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "lenet.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32), path)
    return path


@pytest.fixture
def window(qtbot, app_settings, toy_methods, model_file):
    w = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings, methods=toy_methods)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.open_model(str(model_file))
    qtbot.waitUntil(lambda: len(w.layers.rows) > 2, timeout=20000)
    yield w
    w.jobs.shutdown()


def _select_rows(view, names):
    """Select ``names`` in the table the way Ctrl-clicks do (through the selection model)."""
    selection = view.table.selectionModel()
    for i, name in enumerate(names):
        row = view.proxy.mapFromSource(view.model.index(view.index_of(name), 0))
        flag = QItemSelectionModel.SelectionFlag.Select if i else QItemSelectionModel.SelectionFlag.ClearAndSelect
        selection.setCurrentIndex(row, flag | QItemSelectionModel.SelectionFlag.Rows)


def _name_cell(view, name):
    return view.proxy.data(view.proxy.mapFromSource(view.model.index(view.index_of(name), 0)))


def test_an_override_set_on_several_selected_layers_applies_to_each_and_is_marked(window):
    names = [window.layers.rows[0].name, window.layers.rows[2].name]
    _select_rows(window.layers, names)
    assert sorted(window.layers.selected_names) == sorted(names)
    assert "2 selected layers" in window.controls.layer_box.title()
    mode = window.controls.layer_modes["prune"]
    mode.setCurrentIndex(mode.findData(DISABLE))
    recipe = window.controls.recipe_dict()
    assert {layer: entry for layer, entry in recipe["layers"].items()} == {n: {"prune": None} for n in names}
    untouched = window.layers.rows[1].name
    for name in names:
        assert _name_cell(window.layers, name).startswith(OVERRIDE_MARK)
    assert not _name_cell(window.layers, untouched).startswith(OVERRIDE_MARK)
    assert sorted(window.layers.override_marks.opts["x"]) == sorted(window.layers.index_of(n) for n in names)

    mode.setCurrentIndex(mode.findData(CUSTOM))  # custom settings go to both layers too
    recipe = window.controls.recipe_dict()
    assert all(recipe["layers"][n]["prune"] is not None for n in names)


def test_the_selected_layer_panel_sits_beside_the_layer_table(window):
    dock_widget = window.layers_dock.widget()
    assert dock_widget.isAncestorOf(window.layers)
    assert dock_widget.isAncestorOf(window.controls.layer_box)
    assert not window.controls_dock.widget().isAncestorOf(window.controls.layer_box)


def test_one_click_after_a_multi_selection_selects_one_layer(window):
    names = [r.name for r in window.layers.rows[:3]]
    _select_rows(window.layers, names)
    window.layers.select_layer(names[1])
    assert window.layers.selected_names == [names[1]]
    assert window.controls.selected_layers == [names[1]]
    assert window.session.selected_layer == names[1]


def test_the_export_dialog_says_plain_formats_are_dense_and_how_large(window):
    from squeezestudio.core.session.experiments import Experiment, format_bytes

    experiment = Experiment("p", {"methods": {"prune": {"sparsity": 0.5}}}, "prune", 12_345, {})
    notes = dense_notes(window.session, experiment)
    params = sum(p.numel() for p in window.session.handle.module.parameters())
    assert set(notes) == {"pt", "safetensors", "onnx"}
    assert "dense float32" in notes["onnx"]
    assert format_bytes(4 * params) in notes["onnx"] and format_bytes(12_345) in notes["onnx"]
