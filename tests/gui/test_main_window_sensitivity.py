"""The sensitivity scan: one single-layer recipe per (layer, value), curves drawn per layer."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.experiments import Experiment
from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.studio_session import StudioSession
from squeezestudio.gui.qt_sensitivity_view import QtSensitivityView, sensitivity_scan, single_layer_recipe
from squeezestudio.gui.qt_worker import JobManager


def _fake_evaluate(calls):
    def evaluate(recipe, progress=None, cancel=None):
        calls.append(recipe)
        (layer, methods), = recipe["layers"].items()
        sparsity = methods["prune"]["sparsity"]
        accuracy = 1.0 - sparsity * (0.5 if layer == "fc" else 0.1)
        return Experiment(str(len(calls)), recipe, "", 10, {"top1": accuracy})
    return evaluate


def test_scan_builds_single_layer_recipes_and_curves():
    calls, fractions = [], []
    curves = sensitivity_scan(_fake_evaluate(calls), ["conv", "fc"], "prune", "sparsity", [0.0, 0.5, 0.9],
                              progress=lambda f, m="": fractions.append(f))
    assert calls[0] == single_layer_recipe("conv", "prune", "sparsity", 0.0)
    assert calls[0] == {"version": 1, "methods": {}, "layers": {"conv": {"prune": {"sparsity": 0.0}}}}
    assert len(calls) == 6
    assert curves["fc"] == pytest.approx([1.0, 0.75, 0.55])
    assert curves["conv"] == pytest.approx([1.0, 0.95, 0.91])
    assert fractions[-1] == 1.0


def test_scan_stops_when_cancelled():
    token = CancelToken()
    calls = []

    def evaluate(recipe, progress=None, cancel=None):
        calls.append(recipe)
        token.cancel()
        return Experiment("x", recipe, "", 1, {"top1": 0.5})

    with pytest.raises(Cancelled):
        sensitivity_scan(evaluate, ["a", "b"], "prune", "sparsity", [0.1, 0.2], cancel=token)
    assert len(calls) == 1


def test_view_lists_the_largest_layers_and_draws_curves(qtbot):
    from torch import nn
    from types import SimpleNamespace

    torch.manual_seed(0)
    session = StudioSession()
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(50, 400), nn.Linear(400, 3))
    session.handle = SimpleNamespace(module=module)
    jobs = JobManager()
    view = QtSensitivityView(session, jobs)
    qtbot.addWidget(view)
    view.top_n.setValue(2)
    assert view.layers_to_scan() == ["2", "3"]
    view.show_curves({"2": [0.9, 0.5], "3": [0.9, None]}, "sparsity", [0.0, 0.9])
    items = view.plot.getPlotItem().listDataItems()
    assert len(items) == 2
    assert list(items[0].getData()[1]) == pytest.approx([90.0, 50.0])
    jobs.shutdown()
