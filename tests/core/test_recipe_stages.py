"""Staged recipes: parsed, applied stage after stage, retrained on held-out training data, reproducible."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.codec import decode_sqz
from squeezestudio.core.compression.recipe import load_recipe, recipe_from_dict, recipe_to_dict
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.measure.measure_recipe import measure_recipe, retrains
from squeezestudio.core.measure.stages import split_holdout, stage_table
from squeezestudio.core.model.zoo import zoo_handle

STAGED = {"version": 1, "name": "dc", "stages": [
    {"name": "prune", "methods": {"prune": {"sparsity": 0.8}},
     "finetune": {"epochs": 2, "lr": 0.001, "seed": 0, "holdout": 0.25}},
    {"name": "cluster", "methods": {"cluster": {"bits": 3}}, "layers": {"fc3": {"cluster": {"bits": 5}}},
     "finetune": {"epochs": 1, "optimizer": "sgd", "lr": 0.002, "seed": 0}},
]}


def _setup(label_seed=1):
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8)
    gen = torch.Generator().manual_seed(label_seed)
    train = ImageDataset(images=torch.randn(64, 1, 8, 8), labels=torch.randint(0, 4, (64,)),
                         class_names=list("abcd"), name="train")
    val = ImageDataset(images=torch.randn(32, 1, 8, 8), labels=torch.randint(0, 4, (32,), generator=gen),
                       class_names=list("abcd"), name="val")
    return handle, train, val


def test_staged_recipes_parse_round_trip_and_one_stage_keeps_its_format(tmp_path):
    recipe = recipe_from_dict(STAGED)
    assert [s.name for s in recipe.stages] == ["prune", "cluster"] and retrains(recipe)
    assert recipe_to_dict(recipe_from_dict(recipe_to_dict(recipe))) == recipe_to_dict(recipe)
    one = {"version": 1, "methods": {"prune": {"sparsity": 0.5}}, "layers": {}}
    assert "stages" not in recipe_to_dict(recipe_from_dict(one)) and recipe_to_dict(recipe_from_dict(one)) == one
    with pytest.raises(RecipeError, match="inside its stages"):
        recipe_from_dict({"methods": {"prune": {}}, "stages": [{"methods": {}}]})
    with pytest.raises(RecipeError, match="stage 2 has unknown"):
        recipe_from_dict({"stages": [{"methods": {}}, {"method": {}}]})
    shipped = load_recipe("resources/recipes/deep_compression_lenet300.yaml")
    assert len(shipped.stages) == 2 and all(s.finetune.get("holdout") for s in shipped.stages)
    assert load_recipe("resources/recipes/fire_bypass_cnds8.yaml").stage_list()


def test_stages_run_in_order_keep_masks_and_select_epochs_on_training_data_only():
    handle, train, val = _setup()
    measured = measure_recipe(handle, recipe_from_dict(STAGED), val, train_data=train, reference=handle.module, registry=default_registry())
    prune, cluster = measured.stages
    assert prune.holdout_images == 16 and cluster.holdout_images == 0  # 25% of 64 training images held out
    assert prune.training.best_epoch is not None and len(prune.training.history) == 2
    assert cluster.size_bytes == measured.size_bytes < prune.size_bytes  # the last row is the file written
    cm = decode_sqz(measured.sqz_bytes, registry=default_registry())
    for name in ("fc1.weight", "fc2.weight"):
        enc = cm.encodings[name]
        assert enc.kind == "codebook" and enc.bits == 3 and enc.mask is not None
        assert abs(1 - enc.mask.mean() - 0.8) < 0.01  # stage 1's pruning survived stage 2
    assert cm.encodings["fc3.weight"].bits == 5
    assert cm.recipe["stages"][1]["name"] == "cluster"
    # The evaluation data chooses nothing: other labels there give the same weights and the same size.
    handle2, train2, other_val = _setup(label_seed=7)
    again = measure_recipe(handle2, recipe_from_dict(STAGED), other_val, train_data=train2, reference=handle2.module, registry=default_registry())
    assert again.size_bytes == measured.size_bytes
    for key, value in measured.compressed.handle.module.state_dict().items():
        torch.testing.assert_close(again.compressed.handle.module.state_dict()[key], value, rtol=0, atol=0)
    table = stage_table([("original", 0.9, 1000, ""), ("prune", 0.8, 100, "2 epoch(s)")], 1000)
    assert "10.0" in table.splitlines()[-1]


def test_repeated_staged_runs_write_byte_identical_files():
    handle, train, val = _setup()
    first = measure_recipe(handle, recipe_from_dict(STAGED), val, train_data=train, reference=handle.module, registry=default_registry())
    second = measure_recipe(handle, recipe_from_dict(STAGED), val, train_data=train, reference=handle.module, registry=default_registry())
    assert first.sqz_bytes == second.sqz_bytes


def test_holdout_is_a_seeded_part_of_the_training_data():
    _, train, _ = _setup()
    fit, held = split_holdout(train, 0.25, seed=3)
    fit2, held2 = split_holdout(train, 0.25, seed=3)
    assert len(held) == 16 and len(fit) == 48
    assert torch.equal(held.images, held2.images)
    together = torch.cat([fit.images, held.images]).flatten(1)
    assert len({tuple(r.tolist()) for r in together}) == 64  # a split, not a resample
    with pytest.raises(RecipeError):
        measure_recipe(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8),
                       recipe_from_dict({"finetune": {"epochs": 1, "holdout": 2}}), None, train_data=train, registry=default_registry())
