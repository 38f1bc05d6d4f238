"""The sensitivity view runs the core's layer_sensitivity in a worker and draws one curve per layer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.sensitivity import SensitivityPoint, SensitivityResult, layer_sensitivity
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_sensitivity_view import SCANS, QtSensitivityView, scan_levels
from squeezestudio.gui.qt_worker import JobManager
from squeezestudio.core.compression.registry import default_registry


def _tiny_session():
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32)
    data = ImageDataset(images=torch.randn(48, 1, 32, 32), labels=torch.randint(0, 10, (48,)),
                        class_names=[str(i) for i in range(10)])
    session = StudioSession(registry=default_registry())
    session.set_model(handle)
    session.set_data(data, "random")
    return session


def test_scan_levels_pick_one_method():
    assert scan_levels("cluster", (4, 2)) == {"prune_levels": (), "quant_bits": (), "cluster_bits": (4, 2)}
    assert scan_levels("prune", (0.5,))["prune_levels"] == (0.5,)


def test_core_scan_of_one_method_with_cluster_bits():
    session = _tiny_session()
    result = layer_sensitivity(session.handle, session.data, layers=["conv1", "fc3"],
                               **scan_levels("cluster", (4, 1)), registry=default_registry())
    assert {(p.layer, p.method, p.level) for p in result.points} == {
        ("conv1", "cluster", 4.0), ("conv1", "cluster", 1.0), ("fc3", "cluster", 4.0), ("fc3", "cluster", 1.0)}
    assert all(0.0 <= p.agreement <= 1.0 for p in result.points)
    # One weight value per layer (1 bit = 2 shared values at most) changes predictions more than 4 bits.
    by = {(p.layer, p.level): p.agreement for p in result.points}
    assert by[("fc3", 1.0)] <= by[("fc3", 4.0)]


def test_view_runs_the_core_scan_in_a_worker_and_draws_curves(qtbot):
    session = _tiny_session()
    jobs = JobManager()
    view = QtSensitivityView(session, jobs)
    qtbot.addWidget(view)
    view.top_n.setValue(2)
    assert view.layers_to_scan() == ["fc1", "fc2"]  # the two largest, in model order
    view.scan_combo.setCurrentText("Pruning sparsity")
    view.run()
    assert jobs.current("sensitivity") is not None
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    levels = SCANS["Pruning sparsity"][2]
    assert set(view.curves) == {"fc1", "fc2"}
    assert [level for level, _ in view.curves["fc1"]] == pytest.approx(list(levels))
    items = view.plot.listDataItems()
    assert len(items) == 2
    assert list(items[0].getData()[1]) == pytest.approx([100 * v for _, v in view.curves["fc1"]])
    assert "Original top-1" in view.note.text()
    jobs.shutdown()


def test_view_draws_a_given_result_and_cancel_is_reported(qtbot):
    session = StudioSession(registry=default_registry())
    session.handle = SimpleNamespace(module=nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(50, 400)))
    jobs = JobManager()
    view = QtSensitivityView(session, jobs)
    qtbot.addWidget(view)
    result = SensitivityResult(0.9, [SensitivityPoint("2", "quantize", 8, 0.9, 1.0),
                                     SensitivityPoint("2", "quantize", 2, 0.5, 0.6)])
    view.show_result(result, "quantize", "bits")
    [item] = view.plot.listDataItems()
    assert list(item.getData()[1]) == pytest.approx([90.0, 50.0])
    view.run()  # no data: says what to do instead of starting a job
    assert jobs.current("sensitivity") is None and "data set" in view.note.text()
    jobs.shutdown()


def test_apply_turns_the_scan_into_a_per_layer_recipe_and_a_new_point(qtbot, app_settings):
    from squeezestudio.gui.qt_main_window import QtMainWindow

    session = _tiny_session()
    window = QtMainWindow(session, settings=app_settings)
    qtbot.addWidget(window)
    view = window.sensitivity_dock.widget()
    result = SensitivityResult(0.50, [SensitivityPoint("conv1", "prune", 0.5, 0.50, 1.0),
                                      SensitivityPoint("conv1", "prune", 0.9, 0.40, 0.8),
                                      SensitivityPoint("fc1", "prune", 0.5, 0.499, 1.0),
                                      SensitivityPoint("fc1", "prune", 0.9, 0.495, 0.9)])
    view.show_result(result, "prune", "sparsity")
    assert view.plot.getAxis("bottom")._tickLevels[0][0][1] == "0.5"  # the real level, no scale factor
    assert view.legend.parentItem() is not view.plot.vb  # the legend is beside the plot, not over it
    view.max_drop.setValue(1.0)
    before = len(session.experiments)
    recipe = view.apply()
    assert recipe.layers == {"conv1": {"prune": {"sparsity": 0.5}}, "fc1": {"prune": {"sparsity": 0.9}}}
    assert session.recipe is recipe
    qtbot.waitUntil(lambda: len(session.experiments) > before, timeout=60000)  # the new point
    point = session.experiments.list()[-1]
    assert point.recipe["layers"] == {"conv1": {"prune": {"sparsity": 0.5}}, "fc1": {"prune": {"sparsity": 0.9}}}
    window.jobs.shutdown()


def test_bad_levels_are_refused_before_any_evaluation():
    from squeezestudio.core.errors import RecipeError

    session = _tiny_session()
    calls = []
    with pytest.raises(RecipeError, match="bits 1"):
        layer_sensitivity(session.handle, session.data, quant_bits=(4, 1), prune_levels=(),
                          progress=lambda f, m="": calls.append(m), registry=default_registry())
    with pytest.raises(RecipeError, match="no layer 'nope'"):
        layer_sensitivity(session.handle, session.data, layers=["nope"], registry=default_registry())
    assert calls == []  # refused before the first evaluation started


def test_the_scan_runs_on_the_interactive_subset_and_says_so(qtbot):
    from squeezestudio.core.measure.evaluation import evaluate

    session = _tiny_session()
    session.set_interactive_limit(24)
    jobs = JobManager()
    view = QtSensitivityView(session, jobs)
    qtbot.addWidget(view)
    view.top_n.setValue(1)
    view.scan_combo.setCurrentText("Quantization bits")
    view.run()
    assert "on 24 of 48 images" in view.note.text()
    qtbot.waitUntil(lambda: view.result is not None, timeout=60000)
    on_subset = evaluate(session.handle.module, session.interactive_data())
    on_all = evaluate(session.handle.module, session.data)
    assert view.result.baseline_top1 == pytest.approx(on_subset.top1)
    assert view.result.baseline_loss == pytest.approx(on_subset.loss) and on_subset.loss != pytest.approx(on_all.loss)
    original = session.evaluate_recipe(None, original=True)  # the plot's original: the same images, same number
    assert original.metric("top1") == pytest.approx(view.result.baseline_top1)
    assert "on 24 of 48 images;" in view.note.text() and view.note.toolTip() == view.note.text()
    jobs.shutdown()
