"""Hostile flags and recipe files: refused with a sentence before any work (issue 15).

NaN compares false with every bound, so ``sparsity=nan`` passed the range
check and crashed later in ``round()``; ``--threshold inf`` pruned every
weight and exited 0. A YAML 'billion laughs' recipe ran 43 s into a
MemoryError; ``--recipe /dev/zero`` read forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hostile_builders as hb
from hostile_cli import assert_refused, run_hostile
from squeezestudio.core.io.loading import save_state_dict


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flags") / "lenet5.pt"
    save_state_dict(hb.small_handle(), path)
    return path


@pytest.mark.parametrize("flags, needle", [
    (["--prune", "nan"], "finite"),
    (["--set", "prune.sparsity=nan"], "finite"),
    (["--layer", "fc1:prune.sparsity=nan"], "finite"),
    (["--threshold", "nan"], "finite"),
    (["--threshold", "inf"], "finite"),
    (["--prune=-inf"], "finite"),
])
def test_non_finite_compression_values_are_refused(capsys, model: Path, flags: list[str], needle: str) -> None:
    assert_refused(run_hostile(capsys, "compress", model, "--data", "none", *flags), needle)


@pytest.mark.parametrize("flags", [
    ["--threshold", "1000"],
    ["--set", "prune.mode=threshold", "--set", "prune.threshold=1e6"],
    ["--prune", "0.5", "--layer", "fc2:prune.mode=threshold,prune.threshold=50"],
])
def test_threshold_that_would_prune_every_weight_is_refused(capsys, model: Path, flags: list[str]) -> None:
    """Like ``sparsity=1``: a finite threshold above every magnitude would empty the layer and exit 0."""
    line = assert_refused(run_hostile(capsys, "compress", model, "--data", "none", *flags),
                          "every weight", "largest weight magnitude")
    assert ("layer fc2:" in line) if "--layer" in flags else ("layer conv1:" in line)


def test_non_finite_grid_value_is_refused(capsys, model: Path, tmp_path: Path) -> None:
    assert_refused(run_hostile(capsys, "sweep", model, "--grid", "prune.sparsity=0.5,nan",
                               "-o", tmp_path / "s.csv"), "finite")


@pytest.mark.parametrize("levels", ["nan", "0.5,inf", "abc"])
def test_bad_sensitivity_levels_are_refused(capsys, model: Path, tmp_path: Path, levels: str) -> None:
    assert_refused(run_hostile(capsys, "sensitivity", model, "--sparsities", levels,
                               "-o", tmp_path / "s.csv"), "pruning level" if levels != "abc" else "numbers")


def test_recipe_from_dev_zero_is_refused_without_reading(capsys, model: Path) -> None:
    assert_refused(run_hostile(capsys, "compress", model, "--data", "none", "--recipe", "/dev/zero"),
                   "not a regular file")


def _laughs(levels: int = 10) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nmethods: {prune: {sparsity: 0.5}}\n"


@pytest.mark.parametrize("name, text, needle", [
    ("laughs.yaml", _laughs(), "aliases expanded"),
    ("twice.yaml", "methods:\n  prune: {sparsity: 0.5}\n  prune: {sparsity: 0.9}\n", "twice"),
    ("twice.json", '{"methods": {"prune": {"sparsity": 0.5}, "prune": {"sparsity": 0.9}}}', "twice"),
    ("deep.json", hb.deep_json(), "nesting depth"),
    ("deep.yaml", hb.deep_json(), "nesting depth"),
])
def test_hostile_recipe_files_are_refused(capsys, model: Path, tmp_path: Path, name: str, text: str,
                                          needle: str) -> None:
    recipe = tmp_path / name
    recipe.write_text(text)
    assert_refused(run_hostile(capsys, "compress", model, "--data", "none", "--recipe", recipe), needle)
