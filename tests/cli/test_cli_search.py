"""``squeezestudio search`` on the bundled LeNet-300-100, reusing a saved per-layer table."""

from __future__ import annotations

import json
import re

from squeezestudio.cli.main import main
from squeezestudio.core.compression.codec import load_sqz
from squeezestudio.core.compression.recipe import load_recipe
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.search.budget_search import split_selection
from squeezestudio.core.search.layer_table import measure_layer_table, table_to_dict
from squeezestudio.core.search.settings import setting_grid
from squeezestudio.core.compression.registry import default_registry

LENET = str(demo_model_path("lenet300_100"))


def test_search_prints_the_choice_writes_the_recipe_and_fits_the_budget(capsys, tmp_path):
    handle = load_model(LENET, registry=default_registry())
    train = load_dataset("digits:train", PreprocessSpec.from_input_spec(handle.input_spec))
    _, selection = split_selection(train)  # the split the command makes (same seed and fraction)
    grid = setting_grid(sparsities=(0.0, 0.9), cluster_bits=(2, 4), quant_bits=())
    table_path = tmp_path / "table.json"
    table = measure_layer_table(handle, selection, ["fc1", "fc2", "fc3"], grid, registry=default_registry())
    table_path.write_text(json.dumps(table_to_dict(table)))
    budget = table.base_bytes // 8
    recipe_path, sqz = tmp_path / "best.yaml", tmp_path / "best.sqz"
    assert main(["search", LENET, "--budget-bytes", str(budget), "--table", str(table_path),
                 "--save-recipe", str(recipe_path), "-o", str(sqz)]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^\s+{layer}\s", out, re.M) for layer in ("fc1", "fc2", "fc3"))
    size, top1 = re.search(r"measured on digits:val: ([\d,]+) bytes .*top-1 ([\d.]+)%", out).groups()
    assert int(size.replace(",", "")) <= budget and float(top1) > 80
    assert sqz.stat().st_size == int(size.replace(",", ""))  # the printed size is the file's length
    assert set(load_recipe(recipe_path).layers) <= {"fc1", "fc2", "fc3"}
    assert abs(load_sqz(sqz, registry=default_registry()).metrics["top1"] * 100 - float(top1)) < 0.01


def test_search_needs_exactly_one_goal(capsys):
    assert main(["search", LENET, "--budget-bytes", "0"]) == 2
    assert "positive number of bytes" in capsys.readouterr().err
