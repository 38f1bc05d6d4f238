"""Every point is a model: 20 experiments, click the first, every view shows it; same after reopening."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.session.studio_session import StudioSession, recipe_from_dict
from squeezestudio.gui.qt_main_window import QtMainWindow


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


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _click_and_check(qtbot, window, point, expected, tmp_path, tag):
    """Click ``point``; the layer rows, Classify, Graph and Export all show ``expected``'s weights."""
    window.plot.pointClicked.emit(point.id)
    qtbot.waitUntil(lambda: window.shown_point is not None and window.shown_point.experiment.id == point.id,
                    timeout=60000)
    shown = window.shown_point
    assert not shown.rebuilt
    for key, value in _weights(shown.compressed.handle.module).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    # Layers: the non-zeros per layer are the clicked point's, not the original's.
    nonzeros = {r.name: r.nonzeros for r in window.layers.rows}
    checked = 0
    for layer, count in nonzeros.items():
        params = [v for k, v in expected.items() if k in (f"{layer}.weight", f"{layer}.bias")]
        if params:
            assert count == sum(int(torch.count_nonzero(v)) for v in params)
            checked += 1
    assert checked >= 3
    assert window.layers_dock.windowTitle().startswith("Layers — #1 ")
    # Classify compares the original with this point's model.
    assert window.classify_view._models["compressed"] is shown.compressed.handle.module
    assert window.tabs.tabText(1) == "Classify (#1)"
    # Graph: what its tab exports to ONNX is this point's model (the export itself is tested in
    # test_main_window_e2e; it takes tens of seconds, so it is not repeated here).
    assert window._current_compressed() is shown.compressed
    assert window.tabs.tabText(2) == "Graph (#1)"
    # Export writes a .sqz of exactly the size on the plot, holding these weights.
    out = tmp_path / tag
    out.mkdir()

    def answer(dialog):
        dialog.set_folder(out)
        dialog.set_base_name("chosen")
        dialog.set_selected_formats(["sqz"])
        assert "#1" in dialog.windowTitle()
        dialog.export_now()
        return 0
    window.exec_dialog = answer
    window.window_actions["export"].trigger()
    written = out / "chosen.sqz"
    assert written.stat().st_size == point.size_bytes
    from squeezestudio.core.compression.codec import load_sqz
    for key, value in _weights(load_sqz(written, registry=default_registry()).handle.module).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_twenty_points_then_the_first_is_shown_and_exported_before_and_after_reopening(
        qtbot, app_settings, tmp_path, lenet_file):
    window = _window(qtbot, app_settings)
    window.session.data_source = "digits"
    window.open_model(str(lenet_file))
    log = window.session.experiments
    qtbot.waitUntil(lambda: log.original() is not None, timeout=60000)
    for i in range(20):
        before = len(log)
        recipe = {"version": 1, "methods": {"prune": {"sparsity": round(0.04 * (i + 1), 2)}}, "layers": {}}
        window.session.set_recipe(recipe_from_dict(recipe))
        window.runner.evaluate(window.session.recipe)
        qtbot.waitUntil(lambda: len(log) > before, timeout=60000)
    points = [e for e in log if not e.is_original]
    assert len(points) == 20
    first = points[0]
    assert first.compressed is None  # long gone from memory: it must come from the store
    expected = _weights(window.session.points.get(first, registry=window.session.registry).handle.module)
    window.session.points.clear_memory()
    qtbot.waitUntil(lambda: window.point_status.text().startswith("points: 20 stored"), timeout=5000)
    _click_and_check(qtbot, window, first, expected, tmp_path, "before")

    project = tmp_path / "twenty.sqproj"
    window.session.save_project(project)
    window.close()

    again = _window(qtbot, app_settings)
    again.open_project(str(project))
    assert len(again.session.experiments) == 21
    again.session.evaluate_recipe = lambda *a, **k: pytest.fail("a stored point was recomputed")
    reopened = again.session.experiments.find(first.id)
    _click_and_check(qtbot, again, reopened, expected, tmp_path, "after")
    again.jobs.shutdown()


def test_opening_another_model_with_unsaved_points_asks_first(qtbot, app_settings, lenet_file):
    window = _window(qtbot, app_settings)
    window.session.data_source = "digits"
    window.open_model(str(lenet_file))
    log = window.session.experiments
    qtbot.waitUntil(lambda: log.original() is not None, timeout=60000)
    window.session.set_recipe(recipe_from_dict({"version": 1, "methods": {"prune": {"sparsity": 0.5}}}))
    window.runner.evaluate(window.session.recipe)
    qtbot.waitUntil(lambda: len(log) == 2, timeout=60000)
    asked = []
    window.ask_yes_no = lambda title, text: asked.append(text) or False
    handle = window.session.handle
    window.open_model(str(lenet_file))
    qtbot.wait(200)
    assert asked and "1 experiment(s)" in asked[0]
    assert window.session.handle is handle and len(log) == 2  # nothing was discarded
    window.jobs.shutdown()
