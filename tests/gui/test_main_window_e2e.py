"""End to end: open a tiny zoo model and digits, change a control, a new point appears."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.session.studio_session import StudioSession, recipe_to_dict
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.core.compression.registry import default_registry


@pytest.fixture
def model_file(tmp_path):
    from squeezestudio.core.io.loading import save_safetensors
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    path = tmp_path / "lenet.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32), path)
    return path


def test_control_change_adds_a_point(qtbot, app_settings, model_file):
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings)  # the real registered methods
    qtbot.addWidget(window)
    window.show()
    assert {"prune", "cluster", "quantize"} <= set(window.controls.groups)
    window.session.data_source = "digits"
    window.open_model(str(model_file))
    log = window.session.experiments
    qtbot.waitUntil(lambda: log.original() is not None, timeout=60000)
    assert window.session.data is not None and len(window.session.data) > 100
    assert len(window.plot.original.data) == 1

    window.controls.groups["prune"].setChecked(True)
    window.controls.forms["prune"].editors["sparsity"].editor.setValue(0.8)
    qtbot.waitUntil(lambda: len(log) == 2, timeout=60000)  # debounced: one evaluation
    point = log.list()[-1]
    assert point.recipe == recipe_to_dict(window.session.recipe)
    assert point.recipe["methods"]["prune"]["sparsity"] == pytest.approx(0.8)
    assert point.size_bytes < log.original().size_bytes
    assert window.plot.current_id == point.id
    assert {s["data"] for s in window.plot.scatter.data} == {point.id}
    qtbot.waitUntil(lambda: any(r.compressed_bytes for r in window.layers.rows), timeout=30000)
    fc1 = next(r for r in window.layers.rows if r.name == "fc1")
    assert fc1.pruned == pytest.approx(0.8 * 120 * 576, abs=2)

    # Undo goes back to "no compression": the original's recipe; redo reuses the stored point.
    window.undo()
    assert not window.controls.groups["prune"].isChecked()
    assert window.plot.current_id == log.original().id
    window.redo()
    qtbot.wait(100)
    assert len(log) == 2 and window.plot.current_id == point.id
    window.jobs.shutdown()


def test_graph_tab_gets_onnx_exports_of_original_and_compressed(qtbot, app_settings, model_file):
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings)
    qtbot.addWidget(window)
    if window.graph_view is None:
        pytest.fail("the graph view did not load")
    shown = []
    window.graph_view.set_models = lambda original, compressed=None: shown.append((original, compressed))
    window.session.data_source = "digits"
    window.open_model(str(model_file))
    log = window.session.experiments
    qtbot.waitUntil(lambda: log.original() is not None, timeout=60000)
    window.controls.groups["prune"].setChecked(True)
    window.controls.flush()
    qtbot.waitUntil(lambda: len(log) == 2, timeout=60000)
    window.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: bool(shown), timeout=60000)
    original, compressed = shown[0]
    assert original.suffix == ".onnx" and original.stat().st_size > 1000
    assert compressed is not None and compressed.stat().st_size > 1000
    window.tabs.setCurrentIndex(0)
    window.tabs.setCurrentIndex(2)  # nothing changed: no second export
    qtbot.wait(200)
    assert len(shown) == 1
    window.close()
    assert not original.exists()  # temporary copies are removed on close
