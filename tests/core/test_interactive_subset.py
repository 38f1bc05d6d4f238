"""Interactive points on a fixed subset, any point on all images (headless)."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.data.subsets import limited
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.interactive_subset import (DEFAULT_INTERACTIVE_LIMIT, measured_note, measured_on_all,
                                                           subset_summary)
from squeezestudio.core.session.studio_session import StudioSession

PRUNE = {"version": 1, "methods": {"prune": {"sparsity": 0.6}}, "layers": {}}


@pytest.fixture
def session():
    torch.manual_seed(0)
    s = StudioSession(registry=default_registry())
    s.set_model(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8))
    labels = torch.arange(60) % 4
    s.set_data(ImageDataset(images=torch.randn(60, 1, 8, 8), labels=labels, class_names=list("abcd")), "random")
    s.set_interactive_limit(20)
    return s


def test_points_are_measured_on_the_fixed_subset_and_say_so(session):
    original = session.add_experiment(session.evaluate_recipe(None, original=True))
    point = session.add_experiment(session.evaluate_recipe(PRUNE))
    for e in (original, point):
        assert e.metrics["images"] == 20 and e.metrics["images_total"] == 60 and not measured_on_all(e)
    # the same 20 images as the CLI's --limit 20: the subset's accuracy is the point's top-1
    subset = limited(session.data, 20)
    predicted = point.compressed.handle.module(subset.images).argmax(1)
    assert point.metric("top1") == pytest.approx((predicted == subset.labels).float().mean().item())
    assert measured_note(point) == "measured on 20 of 60 images (a fixed stratified subset)"
    assert subset_summary([original, point]) == "measured on 20 of 60 images (a fixed stratified subset)"
    assert session.current_original() is original and session.known_result(PRUNE) is point


def test_a_point_measured_on_all_images_is_a_separate_labelled_point(session):
    point = session.add_experiment(session.evaluate_recipe(PRUNE))
    full = session.add_experiment(session.evaluate_recipe(PRUNE, images=len(session.data)))
    assert full.metrics["images"] == 60 and measured_on_all(full)
    assert full.label == point.label + " (all 60 images)"
    # the same compressed model (calibration never depends on the subset), evaluated on more images
    assert abs(full.size_bytes - point.size_bytes) < 64
    weights = [(a - b).abs().max().item() for a, b in zip(point.compressed.handle.module.state_dict().values(),
                                                          full.compressed.handle.module.state_dict().values())]
    assert max(weights) == 0.0
    assert session.known_result(PRUNE) is point  # an interactive request still gets the subset's point
    assert subset_summary([point, full]).endswith("· ◆: on all 60")
    assert measured_note(full) == "measured on all 60 images"


def test_the_limit_changes_what_is_reused_and_zero_means_all(session):
    session.add_experiment(session.evaluate_recipe(None, original=True))
    session.add_experiment(session.evaluate_recipe(PRUNE))
    seen = []
    session.changed.interactive_limit.connect(seen.append)
    session.set_interactive_limit(0)
    assert seen == [None] and session.interactive_images() == 60
    assert session.known_result(PRUNE) is None and session.current_original() is None  # measured on 20: not reused
    everything = session.evaluate_recipe(PRUNE)
    assert everything.metrics["images"] == 60 and "(all" not in everything.label  # nothing is a subset now
    assert subset_summary([everything]) == ""
    session.set_interactive_limit(1000)
    assert session.interactive_images() == 60  # a limit above the data's size keeps everything
    with pytest.raises(SqueezeStudioError, match="whole number of images"):
        session.set_interactive_limit(-5)
    assert StudioSession(registry=default_registry()).interactive_limit == DEFAULT_INTERACTIVE_LIMIT == 1000


def test_an_evicted_point_is_rebuilt_on_its_own_images(session):
    session.points.limit_bytes = 1  # everything but the newest is evicted
    point = session.add_experiment(session.evaluate_recipe(PRUNE))
    point_bytes = session.points.read_bytes(point)
    session.add_experiment(session.evaluate_recipe({**PRUNE, "methods": {"prune": {"sparsity": 0.9}}}))
    point.compressed = None
    session.points.clear_memory()
    session.set_interactive_limit(30)  # later points use another subset; the old point's bytes must not change
    cm, rebuilt = session.point_model(point)  # it would raise if its metrics (in the file) came out different
    assert rebuilt and session.points.read_bytes(point) == point_bytes


def test_a_saved_project_keeps_which_images_each_point_saw(session, tmp_path):
    session.add_experiment(session.evaluate_recipe(None, original=True))
    full = session.add_experiment(session.evaluate_recipe(PRUNE, images=60))
    session.model_path = "m.pt"
    session.save_project(tmp_path / "p.sqproj")
    reopened = StudioSession(model_loader=lambda path, trust=False: session.handle,
                             data_loader=lambda source, handle: session.data, registry=default_registry())
    reopened.open_project(tmp_path / "p.sqproj")
    assert reopened.data is session.data
    reopened.set_interactive_limit(20)
    again = reopened.experiments.find(full.id)
    assert again.metrics["images"] == 60 and measured_on_all(again)
    assert reopened.current_original().metrics["images"] == 20 and reopened.known_result(PRUNE) is None
