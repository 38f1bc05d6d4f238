"""Bounded parsing: JSON/YAML depth, size, aliases, duplicate keys; pickle structure; limits; safe printing."""

from __future__ import annotations

import json
import time

import pytest

import hostile_builders as hb
from squeezestudio.core.bounded_parse import bracket_depth, load_json, load_yaml, read_text_file
from squeezestudio.core.errors import LimitExceededError, ModelLoadError, RecipeError, SqueezeStudioError
from squeezestudio.core.io.loading.pickle_budget import check_pickle_structure
from squeezestudio.core.limits import current_limits, overridden_limits
from squeezestudio.core.printable import printable


@pytest.mark.parametrize("text", ['{"a": "\\"[[[["}', '{"a\\\\": [[1], {"b": [2]}]}', '"[[["', "[]", "5"])
def test_bracket_depth_agrees_with_the_parsed_structure(text: str) -> None:
    def depth(value) -> int:
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        return 0
    assert bracket_depth(text) == depth(json.loads(text))


def test_deep_json_is_refused_in_linear_time() -> None:
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="nesting depth of the header is 100,000, over the limit of 64"):
        load_json(hb.deep_json(), "the header", ModelLoadError)
    assert time.perf_counter() - start < 1.0


def test_json_duplicate_and_long_keys_and_size_are_refused() -> None:
    with pytest.raises(SqueezeStudioError, match="names the key 'a' twice"):
        load_json('{"a": 1, "b": {}, "a": 2}', "x")
    with pytest.raises(SqueezeStudioError, match="key_length"):
        load_json(json.dumps({"k" * 5000: 1}), "x")
    with pytest.raises(SqueezeStudioError, match="json_bytes"):
        load_json("[" + "0," * 100 + "0]", "x", max_bytes=50)


def test_depth_limit_is_configurable_and_names_its_option() -> None:
    text = "[" * 80 + "]" * 80
    with pytest.raises(SqueezeStudioError, match="--limit json_depth=N"):
        load_json(text, "x")
    with overridden_limits({"json_depth": 100}):
        assert bracket_depth(text) == 80 and load_json(text, "x") is not None
    assert current_limits().json_depth == 64


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUEEZESTUDIO_LIMIT_JSON_DEPTH", "3")
    with pytest.raises(SqueezeStudioError, match="over the limit of 3"):
        load_json("[[[[]]]]", "x")
    monkeypatch.setenv("SQUEEZESTUDIO_LIMIT_JSON_DEPTH", "nan")
    with pytest.raises(LimitExceededError, match="positive whole number"):
        current_limits()


def test_yaml_billion_laughs_is_refused_before_expansion() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="aliases expanded"):
        load_yaml("\n".join(lines), "the recipe", RecipeError)
    assert time.perf_counter() - start < 2.0


def test_yaml_depth_duplicates_and_recursion() -> None:
    with pytest.raises(RecipeError, match="nesting depth"):
        load_yaml("[" * 100_000, "r", RecipeError)
    with pytest.raises(RecipeError, match="names the key 'prune' twice"):
        load_yaml("prune: 1\ncluster: 2\nprune: 3\n", "r", RecipeError)
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "r", RecipeError) == {"a": [1, 2], "b": [1, 2]}
    recursive = load_yaml("&a [*a]", "r", RecipeError)  # a self-referencing alias: counted once, no hang
    assert recursive[0] is recursive


def test_text_files_must_be_regular_and_bounded(tmp_path) -> None:
    with pytest.raises(RecipeError, match="not a regular file"):
        read_text_file("/dev/zero", 1000, "recipe file", "recipe_bytes", RecipeError)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2000)
    with pytest.raises(RecipeError, match="recipe_bytes"):
        read_text_file(big, 1000, "recipe file", "recipe_bytes", RecipeError)


def test_pickle_walk_measures_shared_structure(tmp_path) -> None:
    hb.torch_zip(tmp_path / "bomb.pt", hb.hash_bomb_pickle(30))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="pickle_nodes"):
        check_pickle_structure(tmp_path / "bomb.pt", "bomb.pt")
    assert time.perf_counter() - start < 1.0
    hb.torch_zip(tmp_path / "small.pt", hb.hash_bomb_pickle(8))  # 2^9 nodes: allowed
    check_pickle_structure(tmp_path / "small.pt", "small.pt")
    with overridden_limits({"pickle_nodes": 100}), pytest.raises(ModelLoadError, match="at least"):
        check_pickle_structure(tmp_path / "small.pt", "small.pt")


def test_pickle_walk_accepts_real_checkpoints(tmp_path) -> None:
    import torch

    from squeezestudio.core.io.loading import save_state_dict

    save_state_dict(hb.small_handle(), tmp_path / "real.pt")
    check_pickle_structure(tmp_path / "real.pt", "real.pt")
    torch.save({"w": torch.zeros(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    check_pickle_structure(tmp_path / "legacy.pt", "legacy.pt")


@pytest.mark.parametrize("raw, shown", [
    ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),
    ("cat\nerror: forged", "cat\\nerror: forged"),
    ("\x1b]52;c;SGVsbG8=\x07", "\\x1b]52;c;SGVsbG8=\\x07"),
    ("abc\u202egnp.exe", "abc\\u202egnp.exe"),
    ("chat noir", "chat noir"),
    ("Größe 日本", "Größe 日本"),
])
def test_printable_escapes_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable() or " " in printable(raw)
