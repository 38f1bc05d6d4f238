"""Recipes: file round trips, glob/override resolution, validation messages, CLI shorthands."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.clustering import ClusterConfig
from squeezestudio.core.compression.pruning import PruneConfig
from squeezestudio.core.compression.recipe import (
    Recipe, build_recipe_from_cli, layer_plan, load_recipe, parse_layer_option, recipe_from_dict,
    recipe_to_dict, resolve, save_recipe, validate)
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.handle import InputSpec, ModelHandle

NAMES = ["features.0", "features.3", "classifier.1"]
REGISTRY = build_registry(plugins=False)


def tiny_state() -> CompressionState:
    torch.manual_seed(0)
    module = nn.Sequential()
    module.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                                nn.Conv2d(4, 4, 3), nn.ReLU()))
    module.add_module("classifier", nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10)))
    handle = ModelHandle(module=module, name="tiny", input_spec=InputSpec(3, 8, 8),
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    return CompressionState.from_handle(handle)


SAMPLE = {
    "version": 1,
    "name": "demo",
    "methods": {"prune": {"sparsity": 0.9, "scope": "global"}, "cluster": {"bits": 5}},
    "layers": {
        "features.0": {"prune": {"sparsity": 0.5}},
        "features.*": {"cluster": {"bits": 8}},
        "classifier.*": {"cluster": None, "quantize": {"bits": 4}},
    },
    "finetune": {"epochs": 2, "lr": 0.001},
    "architecture": [{"method": "fire", "layer": "features.3", "squeeze_ratio": 0.25}],
}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    recipe = recipe_from_dict(SAMPLE)
    path = tmp_path / f"recipe{suffix}"
    assert save_recipe(recipe, path) == path.stat().st_size > 0
    again = load_recipe(path)
    assert recipe_to_dict(again) == recipe_to_dict(recipe) == SAMPLE
    assert list(again.layers) == list(SAMPLE["layers"])  # order kept: later patterns win


def test_bad_files_give_one_sentence_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: {prune: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML.*line"):
        load_recipe(bad)
    badjson = tmp_path / "bad.json"
    badjson.write_text("{\"methods\": }")
    with pytest.raises(RecipeError, match="not valid JSON"):
        load_recipe(badjson)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(RecipeError, match="unknown section"):
        recipe_from_dict({"method": {}})
    with pytest.raises(RecipeError, match="newer"):
        recipe_from_dict({"version": 99})
    with pytest.raises(RecipeError, match="mapping"):
        recipe_from_dict({"methods": ["prune"]})


def test_exact_names_beat_globs_and_later_patterns_win() -> None:
    recipe = recipe_from_dict({
        "methods": {"prune": {"sparsity": 0.9, "scope": "global"}, "cluster": {"bits": 5}},
        "layers": {
            "features.0": {"prune": {"sparsity": 0.5}},
            "features.*": {"prune": {"sparsity": 0.7}, "cluster": {"bits": 6}},
            "*": {"cluster": {"bits": 7}},
            "classifier.1": {"cluster": None},
        },
    })
    plan = layer_plan(recipe, NAMES)
    assert plan["features.0"]["prune"] == {"sparsity": 0.5, "scope": "global"}  # exact wins over later glob
    assert plan["features.3"]["prune"] == {"sparsity": 0.7, "scope": "global"}
    assert plan["features.3"]["cluster"] == {"bits": 7}  # later glob wins
    assert "cluster" not in plan["classifier.1"]
    assert plan["classifier.1"]["prune"] == {"sparsity": 0.9, "scope": "global"}


@pytest.mark.parametrize("data, message", [
    ({"methods": {"prunning": {}}}, "unknown method 'prunning'; known: "),
    ({"layers": {"features.9": {"prune": {}}}}, "unknown layer 'features.9'.*features.0"),
    ({"layers": {"head.*": {"prune": {}}}}, "'head.\\*' matches no layer"),
    ({"methods": {"cluster": {"bits": 9}}}, "bits=9 is above the maximum 8"),
    ({"layers": {"features.0": {"quantize": {"bits": 0}}}}, "layer features.0, quantize: bits=0 is below"),
    ({"methods": {"cluster": {"bitz": 4}}}, "unknown option"),
    ({"methods": {"cluster": {}, "quantize": {}}}, "cluster and quantize cannot both apply"),
    ({"methods": {"cluster": {}}, "layers": {"classifier.1": {"quantize": {}}}},
     "layer classifier.1: .* cannot both apply"),
])
def test_validation_messages(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        validate(recipe_from_dict(data), NAMES, REGISTRY)


def test_conflict_resolved_by_disabling_one_method() -> None:
    recipe = recipe_from_dict({"methods": {"cluster": {}},
                               "layers": {"classifier.1": {"cluster": None, "quantize": {"bits": 8}}}})
    validate(recipe, NAMES, REGISTRY)  # no RecipeError: the override removes the clash
    plan = layer_plan(recipe, NAMES)
    assert plan["classifier.1"] == {"quantize": {"bits": 8}}
    assert plan["features.0"] == plan["features.3"] == {"cluster": {}}


def test_resolve_gives_typed_configs_in_method_order() -> None:
    recipe = recipe_from_dict({
        "methods": {"quantize": {"bits": 6}, "prune": {"sparsity": 0.5}},
        "layers": {"features.*": {"quantize": None, "cluster": {"bits": 3}}},
    })
    plan = resolve(recipe, tiny_state(), REGISTRY)
    assert [m.name for m, _ in plan] == ["prune", "cluster", "quantize"]
    prune, cluster, quantize = (configs for _, configs in plan)
    assert list(prune) == NAMES and all(isinstance(c, PruneConfig) for c in prune.values())
    assert set(cluster) == {"features.0", "features.3"} and isinstance(cluster["features.0"], ClusterConfig)
    assert set(quantize) == {"classifier.1"} and quantize["classifier.1"].bits == 6
    assert "features.1" not in prune  # BatchNorm: global methods skip layers they do not apply to


def test_naming_a_layer_a_method_cannot_handle_is_an_error() -> None:
    recipe = recipe_from_dict({"layers": {"features.1": {"prune": {"sparsity": 0.5}}}})
    with pytest.raises(RecipeError, match="prune does not apply to layer features.1 \\(BatchNorm2d\\)"):
        resolve(recipe, tiny_state(), REGISTRY)


def test_parse_layer_option() -> None:
    pattern, override = parse_layer_option("features.0:prune.sparsity=0.5,cluster.bits=4,quantize=off")
    assert pattern == "features.0"
    assert override == {"prune": {"sparsity": 0.5}, "cluster": {"bits": 4}, "quantize": None}
    assert parse_layer_option("classifier.*:cluster") == ("classifier.*", {"cluster": {}})
    for bad in ("features.0", "features.0:", "features.0:prune.sparsity", "x:prune.=3", "x:prune=maybe"):
        with pytest.raises(RecipeError):
            parse_layer_option(bad)


def test_build_recipe_from_cli_is_valid_and_typed() -> None:
    recipe = build_recipe_from_cli(prune=0.9, cluster_bits=5, scope="global",
                                   layers=["classifier.1:cluster=off,quantize.bits=8", "features.0:prune.sparsity=0.3"],
                                   options=["cluster.init=density"])
    assert recipe.methods == {"prune": {"mode": "sparsity", "sparsity": 0.9, "scope": "global"},
                              "cluster": {"bits": 5, "init": "density"}}
    validate(recipe, NAMES, REGISTRY)
    plan = {m.name: c for m, c in resolve(recipe, tiny_state(), REGISTRY)}
    assert plan["quantize"]["classifier.1"].bits == 8 and "classifier.1" not in plan["cluster"]
    assert plan["prune"]["features.0"].sparsity == 0.3
    with pytest.raises(RecipeError, match="not both"):
        build_recipe_from_cli(prune=0.5, threshold=0.01)
    thr = build_recipe_from_cli(threshold=0.01)
    assert thr.methods["prune"] == {"mode": "threshold", "threshold": 0.01}
    assert Recipe().methods == {} and recipe_to_dict(Recipe())["version"] == 1


def test_numeric_layer_names_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "seq.yaml"
    path.write_text("methods: {prune: {sparsity: 0.5}}\nlayers:\n  0: {prune: {sparsity: 0.25}}\n")
    recipe = load_recipe(path)
    assert recipe.layers == {"0": {"prune": {"sparsity": 0.25}}}
    assert layer_plan(recipe, ["0", "2"])["0"]["prune"]["sparsity"] == 0.25
