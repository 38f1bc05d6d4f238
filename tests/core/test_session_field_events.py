"""The session's per-field typed events: every real change of a field fires its event once, with the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.evented import EventedField, FieldEvents, same_value
from squeezestudio.core.session.experiments import Experiment
from squeezestudio.core.session.studio_session import StudioSession, recipe_from_dict


def _recorder(session: StudioSession) -> dict[str, list]:
    seen: dict[str, list] = {name: [] for name in session.changed.names}
    for name in session.changed.names:
        getattr(session.changed, name).connect(lambda value, name=name: seen[name].append(value))
    return seen


@pytest.fixture
def session() -> StudioSession:
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8)
    data = ImageDataset(torch.rand(12, 1, 8, 8), torch.arange(12) % 4, ["a", "b", "c", "d"], name="toy")
    return StudioSession(model_loader=lambda path, trust=False: handle, data_loader=lambda source, h: data,
                         registry=default_registry())


def test_every_session_field_has_its_own_event(session):
    assert set(session.changed.names) == {"handle", "model_path", "data", "data_source", "train_source", "recipe",
                                          "selected_layer", "project_path", "unsaved", "interactive_limit"}
    with pytest.raises(AttributeError, match="no evented field 'nonsense'"):
        session.changed.nonsense


def test_opening_a_model_and_data_fire_the_fields_that_changed(session):
    seen = _recorder(session)
    handle = session.open_model("m.safetensors")
    assert seen["handle"] == [handle] and seen["model_path"] == ["m.safetensors"]
    assert seen["data"] == [] and seen["selected_layer"] == []  # nothing else changed
    dataset = session.open_data("toy-source")
    assert seen["data"] == [dataset] and seen["data_source"] == ["toy-source"]


def test_selection_and_recipe_fire_once_per_real_change(session):
    session.open_model("m.safetensors")
    seen = _recorder(session)
    session.select_layer("fc1")
    session.select_layer("fc1")  # the same value: no event
    session.select_layer("fc2")
    assert seen["selected_layer"] == ["fc1", "fc2"]
    recipe = recipe_from_dict({"methods": {"prune": {"sparsity": 0.5}}})
    session.set_recipe(recipe)
    session.undo()
    assert seen["recipe"] == [recipe, None]


def test_unsaved_follows_added_points_and_saving(session, tmp_path):
    session.open_model("m.safetensors")
    seen = _recorder(session)
    session.add_experiment(Experiment("a", {"methods": {}}, "a point", 10, {"top1": 0.5}))
    session.add_experiment(Experiment("b", {"methods": {}}, "another", 11, {"top1": 0.6}))
    assert seen["unsaved"] == [True]  # already unsaved: the second point is not a change
    path = tmp_path / "p.sqproj"
    session.save_project(path)
    assert seen["unsaved"] == [True, False] and seen["project_path"] == [path]


def test_a_field_on_another_class_and_what_counts_as_a_change():
    class Box:
        size = EventedField[int](0)
        where = EventedField[object](None)

        def __init__(self) -> None:
            self.changed = FieldEvents(type(self))

    box, sizes = Box(), []
    box.changed.size.connect(sizes.append)
    box.size, box.size, box.size = 3, 3, 4
    assert sizes == [3, 4] and box.size == 4
    assert same_value(Path("a"), Path("a")) and not same_value([1], [1])  # lists are compared by identity
    assert not same_value(1, True)  # different types are a change
