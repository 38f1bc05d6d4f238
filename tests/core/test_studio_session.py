"""StudioSession: undo/redo, events, project save/open and autosave (headless)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.session.experiments import Experiment
from squeezestudio.core.session.studio_session import (StudioSession, find_autosave, read_project, recipe_summary,
                                                recipe_from_dict, recipe_to_dict)
from squeezestudio.core.compression.registry import default_registry


class _DataSet(SimpleNamespace):
    """A stand-in for a loaded data set: a name and a length (the session counts its images)."""

    def __len__(self) -> int:
        return 10


def _tiny_handle(path="tiny.pt"):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return SimpleNamespace(module=module, name="tiny", source_path=path, class_names=["a", "b", "c"])


def _session(loaded):
    def model_loader(path, trust=False):
        loaded.append(("model", path, trust))
        return _tiny_handle(path)

    def data_loader(source, handle):
        loaded.append(("data", source, handle.name))
        return _DataSet(name=source)

    return StudioSession(model_loader=model_loader, data_loader=data_loader, registry=default_registry())


def _recipe(sparsity):
    return {"version": 1, "methods": {"prune": {"sparsity": sparsity}}, "layers": {}}


def test_undo_redo_walks_the_history_and_emits():
    session = _session([])
    seen = []
    session.events.recipe.connect(seen.append)
    for s in (0.1, 0.2, 0.3):
        session.set_recipe(_recipe(s))
    assert session.undo() and session.recipe == _recipe(0.2)
    assert session.undo() and session.recipe == _recipe(0.1)
    assert session.redo() and session.recipe == _recipe(0.2)
    session.set_recipe(_recipe(0.9))  # a new change clears the redo stack
    assert not session.can_redo and not session.redo()
    assert session.undo() and session.undo() and session.undo()
    assert session.recipe is None and not session.undo()
    assert seen[:3] == [_recipe(0.1), _recipe(0.2), _recipe(0.3)]
    assert len(seen) == 3 + 3 + 1 + 3


def test_undo_history_is_bounded():
    session = StudioSession(undo_limit=5, registry=default_registry())
    for i in range(20):
        session.set_recipe(_recipe(i / 100))
    steps = 0
    while session.undo():
        steps += 1
    assert steps == 5
    assert session.recipe == _recipe(14 / 100)


def test_selection_event_only_on_change():
    session = StudioSession(registry=default_registry())
    seen = []
    session.events.selection.connect(seen.append)
    session.select_layer("0")
    session.select_layer("0")
    session.select_layer(None)
    assert seen == ["0", None]


def test_open_data_needs_a_model():
    with pytest.raises(SqueezeStudioError, match="open a model"):
        _session([]).open_data("digits")


def test_evaluate_without_model_or_data_is_a_clear_error():
    session = _session([])
    with pytest.raises(SqueezeStudioError, match="open a model"):
        session.evaluate_recipe(_recipe(0.5))
    session.open_model("m.pt")
    with pytest.raises(SqueezeStudioError, match="data set"):
        session.evaluate_recipe(_recipe(0.5))


def test_project_round_trip(tmp_path):
    loaded = []
    session = _session(loaded)
    session.open_model(str(tmp_path / "model.pt"), trust=False)
    session.open_data("digits")
    session.add_experiment(Experiment(id="orig", recipe={}, label="original", size_bytes=4000,
                                      metrics={"top1": 0.9, "agreement": 1.0}, is_original=True))
    session.add_experiment(Experiment(id="p50", recipe=_recipe(0.5), label="prune 50%", size_bytes=2100,
                                      metrics={"top1": 0.88, "agreement": 0.97, "top5": None}))
    session.set_recipe(_recipe(0.5))
    session.select_layer("0")
    path = tmp_path / "work.sqproj"
    written = session.save_project(path)
    assert written == path.stat().st_size
    assert json.loads(path.read_text())["model_path"] == str(tmp_path / "model.pt")

    loaded2 = []
    other = _session(loaded2)
    other.open_project(path)
    assert loaded2 == [("model", str(tmp_path / "model.pt"), False), ("data", "digits", "tiny")]
    assert [e.to_dict() for e in other.experiments] == [e.to_dict() for e in session.experiments]
    assert recipe_to_dict(other.recipe) == _recipe(0.5)
    assert other.selected_layer == "0"
    assert other.project_path == path
    assert other.restore_experiment("orig").is_original and other.recipe is None
    assert other.undo() and recipe_to_dict(other.recipe) == _recipe(0.5)


def test_bad_project_files(tmp_path):
    with pytest.raises(SqueezeStudioError, match="does not exist"):
        read_project(tmp_path / "missing.sqproj")
    bad = tmp_path / "bad.sqproj"
    bad.write_text("{not json")
    with pytest.raises(SqueezeStudioError, match="not a readable"):
        read_project(bad)
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SqueezeStudioError, match="not a SqueezeStudio project"):
        read_project(bad)
    bad.write_text(json.dumps({"format": "squeezestudio-project", "version": 99}))
    with pytest.raises(SqueezeStudioError, match="newer"):
        read_project(bad)


def test_autosave_find_and_restore(tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZESTUDIO_HOME", str(tmp_path / "home"))
    assert find_autosave() is None
    session = _session([])
    session.open_model("m.pt")
    session.add_experiment(Experiment(id="a", recipe=_recipe(0.3), label="x", size_bytes=10, metrics={"top1": 0.5}))
    path = session.autosave()
    assert path.parent == tmp_path / "home"
    info = find_autosave()
    assert info is not None and info.path == path and info.timestamp > 0
    other = _session([])
    other.restore_autosave(info)
    assert other.experiments.find("a").size_bytes == 10
    assert other.project_path is None


def test_recipe_summary_mentions_methods_and_overrides():
    recipe = {"version": 1, "methods": {"prune": {"sparsity": 0.5, "scope": "layer"}, "cluster": {"bits": 4}},
              "layers": {"fc": {"prune": None}}}
    text = recipe_summary(recipe, defaults={})
    assert "prune(sparsity=0.5, scope=layer)" in text and "cluster(bits=4)" in text and "1 layer override" in text
    quiet = recipe_summary(recipe, defaults={"prune": {"scope": "layer", "sparsity": 0.9}, "cluster": {"bits": 4}})
    assert quiet == "prune(sparsity=0.5); cluster(bits=4); 1 layer override(s)"
    assert recipe_summary({"methods": {"prune": {"sparsity": 0.9, "scope": "global"}}},
                          defaults={"prune": {"sparsity": 0.9, "scope": "layer"}}) == "prune(sparsity=0.9, scope=global)"
    assert recipe_summary({}, defaults={}) == "no compression"


def test_evaluate_recipe_end_to_end_on_a_tiny_zoo_model():
    """compress -> exact .sqz size -> evaluate, with agreement against the original."""
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.data.dataset import ImageDataset
    from squeezestudio.core.model.zoo import zoo_handle

    torch.manual_seed(0)
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32)
    data = ImageDataset(images=torch.randn(64, 1, 32, 32), labels=torch.randint(0, 10, (64,)),
                        class_names=[str(i) for i in range(10)])
    session = StudioSession(registry=default_registry())
    session.set_model(handle)
    session.set_data(data, "random")
    fractions = []
    original = session.evaluate_recipe(None, lambda f, m="": fractions.append(f), original=True)
    assert original.is_original and original.metrics["agreement"] == 1.0
    assert original.size_bytes == len(encode_sqz(original.compressed, registry=default_registry()))
    recipe = {"version": 1, "methods": {"prune": {"sparsity": 0.8}, "cluster": {"bits": 4}}, "layers": {}}
    small = session.evaluate_recipe(recipe)
    assert small.size_bytes == len(encode_sqz(small.compressed, registry=default_registry())) == small.size_report.total_bytes
    assert small.size_bytes < original.size_bytes / 5
    assert 0.0 <= small.metrics["agreement"] <= 1.0 and small.metrics["top1"] is not None
    assert recipe_to_dict(recipe_from_dict(small.recipe)) == small.recipe
    assert "prune(sparsity=0.8)" in small.label
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert len(session.experiments) == 0  # evaluation alone changes nothing
    session.add_experiment(original)
    session.add_experiment(small)
    assert session.latest_compressed() is small
    session.experiments.chance = None  # random labels: every model here is at chance, which the frontier skips
    assert session.experiments.pareto_ids("agreement")[0] == small.id


def test_calibration_images_come_from_digits_train_or_the_loaded_data():
    """Fire substitution is fitted on training digits (not the evaluation split), else on the user's data."""
    class Data(SimpleNamespace):
        def __len__(self):
            return len(self.images)

    asked = []
    train = Data(images=torch.arange(300.0).reshape(300, 1, 1, 1))

    def data_loader(source, handle):
        asked.append(source)
        return train

    session = StudioSession(model_loader=lambda p, trust=False: _tiny_handle(p), data_loader=data_loader, registry=default_registry())
    session.set_model(_tiny_handle())
    session.set_data(Data(images=-torch.ones(10, 1, 1, 1)), "digits")
    images = session.calibration_images()
    assert asked == ["digits:train"] and images.shape[0] == 256 and float(images[255]) == 255.0
    session.set_data(Data(images=-torch.ones(10, 1, 1, 1)), "/some/folder")
    assert float(session.calibration_images().sum()) == -10.0 and asked == ["digits:train"]
    session.set_data(Data(images=torch.zeros(0, 1, 1, 1)), "/empty")
    with pytest.raises(SqueezeStudioError, match="open a data set"):
        session.calibration_images()


def test_training_data_is_digits_train_or_the_users_own_and_is_cached():
    """Retraining never trains on the evaluation data: digits' training split or a set the user opens."""
    asked = []

    def data_loader(source, handle):
        asked.append(source)
        return _DataSet(name=source)

    session = StudioSession(model_loader=lambda p, trust=False: _tiny_handle(p), data_loader=data_loader, registry=default_registry())
    session.open_model("m.pt")
    session.open_data("digits")
    assert session.training_source() == "digits:train"
    first = session.training_data()
    assert first.name == "digits:train" and session.training_data() is first
    assert asked == ["digits", "digits:train"]  # loaded once, then cached
    session.open_data("/eval/folder")
    with pytest.raises(SqueezeStudioError, match="retraining needs training data"):
        session.training_data()
    seen = []
    session.events.data.connect(lambda: seen.append(True))
    assert session.open_training_data("/train/folder").name == "/train/folder" and seen == [True]
    assert session.training_source() == "/train/folder" and session.training_data().name == "/train/folder"
    assert asked.count("/train/folder") == 1
    assert session.project_dict()["train_source"] == "/train/folder"
    session.open_model("other.pt")  # a new model: the same source is preprocessed again, on demand
    assert session.training_data().name == "/train/folder" and asked.count("/train/folder") == 2


def _digits_session():
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.data.digits import load_digits_split
    from squeezestudio.core.model.zoo import zoo_handle

    spec = PreprocessSpec(channels=1, height=28, width=28, mean=(0.5,), std=(0.5,))
    loads = []

    def data_loader(source, handle):
        loads.append(source)
        split = "train" if source == "digits:train" else "val"
        data = load_digits_split(split, spec)
        keep = torch.arange(0, len(data), 4 if split == "train" else 3)  # a fraction keeps the test fast
        return type(data)(images=data.images[keep], labels=data.labels[keep], class_names=data.class_names,
                          name=data.name)

    torch.manual_seed(0)
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28)
    session = StudioSession(data_loader=data_loader, registry=default_registry())
    session.set_model(handle)
    session.open_data("digits")
    return session, loads


def test_evaluating_with_retraining_differs_from_without_and_labels_it():
    session, loads = _digits_session()
    recipe = {"version": 1, "methods": {"prune": {"sparsity": 0.5}}, "layers": {}}
    plain = session.evaluate_recipe(recipe)
    retrain = dict(recipe, finetune={"epochs": 1, "lr": 0.003, "seed": 0})
    fractions = []
    trained = session.evaluate_recipe(retrain, lambda f, m="": fractions.append((f, m)))
    assert loads == ["digits", "digits:train"]
    assert trained.label.endswith("+ retrain 1 ep") and "retrain" not in plain.label
    assert trained.recipe["finetune"]["epochs"] == 1 and "finetune" not in plain.recipe
    assert trained.metrics["top1"] != plain.metrics["top1"]
    assert trained.metrics["top1"] > plain.metrics["top1"]  # an untrained LeNet learns in one epoch
    assert any(m.startswith("epoch") for _, m in fractions)
    assert [f for f, _ in fractions] == sorted(f for f, _ in fractions)
    from squeezestudio.core.compression.codec import encode_sqz
    assert trained.size_bytes == len(encode_sqz(trained.compressed, registry=default_registry()))
    session.open_data("/my/photos")  # a user's data set without a training set: a sentence, no point
    with pytest.raises(SqueezeStudioError, match="retraining needs training data"):
        session.evaluate_recipe(retrain)


def test_a_recipe_already_measured_is_reused_and_compressing_nothing_is_the_original():
    session = StudioSession(registry=default_registry())
    assert session.known_result(_recipe(0.5)) is None and session.known_result(None) is None
    original = session.add_experiment(Experiment(id="o", recipe={}, label="original", size_bytes=100,
                                                 is_original=True))
    first = session.add_experiment(Experiment(id="a", recipe=recipe_to_dict(_recipe(0.5)), label="a", size_bytes=60))
    newer = session.add_experiment(Experiment(id="b", recipe=recipe_to_dict(_recipe(0.5)), label="b", size_bytes=61))
    assert session.known_result(None) is original and session.known_result({"methods": {}}) is original
    assert session.known_result(_recipe(0.5)) is newer and newer is not first
    assert session.known_result(_recipe(0.6)) is None
