"""Interactive points on a fixed subset, any point on all images (headless)."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.data.subsets import limited
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.experiments import Experiment
from squeezestudio.core.session.interactive_subset import (DEFAULT_INTERACTIVE_LIMIT, compared, comparison_images,
                                                           frontier_images, measured_note, measured_on_all,
                                                           subset_summary)
from squeezestudio.core.session.plot_axes import plot_frontier
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
    assert subset_summary([point, full], session.interactive_images()) == (
        "measured on 20 of 60 images (a fixed stratified subset) · hollow, not compared: 1 on all 60")
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


def _point(name, size, top1, images, total=60, original=False):
    return Experiment(name, {}, name, size, {"top1": top1, "images": images, "images_total": total},
                      is_original=original)


def test_the_frontier_compares_only_points_measured_on_the_same_images():
    # "all" would dominate every subset point (smaller and more accurate), and "old" (an earlier 30-image
    # subset) the 20-image ones: neither may be on the frontier of the points on 20 images.
    points = [_point("orig", 1000, 0.9, 20, original=True), _point("a", 400, 0.8, 20), _point("b", 200, 0.6, 20),
              _point("all", 100, 0.95, 60), _point("old", 150, 0.85, 30)]
    front = [points[i].id for i in plot_frontier(points, "size_bytes", "top1", images=20)]
    assert front == ["b", "a", "orig"]
    assert [points[i].id for i in plot_frontier(points, "size_bytes", "top1")] == ["all"]  # unfiltered: it wins
    assert frontier_images(points, 20) == 20
    assert frontier_images(points, 45) == 30  # nothing on 45 yet: the newest point's images, still one count
    assert frontier_images([Experiment("x", {}, "x", 1, {"top1": 0.5})], 20) is None  # no counts: all compared
    same, other = compared(points, 20)
    assert [e.id for e in same] == ["orig", "a", "b"] and [e.id for e in other] == ["all", "old"]
    assert subset_summary(points, 20) == ("measured on 20 of 60 images (a fixed stratified subset) · "
                                          "hollow, not compared: 1 on all 60, 1 on 30 of 60")
    assert subset_summary(points[:3] + points[3:4], 60) == ("measured on all 60 images · hollow, not compared: "
                                                            "3 on 20 of 60")
    assert subset_summary([points[3]], 60) == ""  # everything on all images: nothing to say


def test_the_log_follows_the_images_points_are_measured_on_now(session):
    log = session.experiments
    assert log.images == 20
    changes = []
    log.on_change.append(lambda: changes.append(log.images))
    session.set_interactive_limit(30)
    session.set_interactive_limit(30)  # no change: no redraw
    session.set_interactive_limit(0)
    assert changes == [30, 60]
    session.set_data(ImageDataset(images=torch.randn(10, 1, 8, 8), labels=torch.arange(10) % 4,
                                  class_names=list("abcd")), "small")
    assert log.images == 10 and session.interactive_data() is session.data


def test_compare_uses_the_images_both_points_saw_else_the_subset(session):
    a, b, full = _point("a", 1, 0.5, 20), _point("b", 1, 0.5, 20), _point("f", 1, 0.5, 60)
    assert comparison_images([a, b], 30) == 20 and comparison_images([full, full], 20) == 60
    assert comparison_images([a, full], 20) == 20 and comparison_images([a, full], 60) == 60
    assert comparison_images([a, Experiment("x", {}, "x", 1, {})], 30) == 30
    subset = session.interactive_data(20)
    assert len(subset) == 20 and session.interactive_data() is subset  # one subset per size, kept
    assert torch.equal(subset.images, limited(session.data, 20).images)  # the CLI's --limit 20 images
