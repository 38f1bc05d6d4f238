"""Folder discovery: every plugin of plugins/ is found and loads; a broken one is reported, not fatal."""

from __future__ import annotations

import sys
from pathlib import Path

from squeezestudio.core.compression.method import CompressionMethod
from squeezestudio.core.compression.plugin_folder import (
    FolderPlugin, discover_folder_plugins, load_folder_plugin, parse_minimal_pyproject,
    read_pyproject, register_folder_plugins)
from squeezestudio.core.compression.registry import build_registry

from plugin_helpers import PLUGINS

EXPECTED = {"pow2", "lowrank", "structured", "freshnets", "depthwise", "shuffle"}


def _write_plugin(root: Path, folder: str, module: str, body: str, entry: str = "Method") -> None:
    d = root / folder
    d.mkdir()
    (d / "pyproject.toml").write_text(
        f'[project]\nname = "squeezestudio-{folder}"\nversion = "1.2.3"\n\n'
        f'[project.entry-points."squeezestudio.methods"]\n{folder} = "{module}:{entry}"\n')
    (d / f"{module}.py").write_text(body)


GOOD = '''
from dataclasses import dataclass
from squeezestudio.core.compression.method import CompressionMethod, ORDER_SHARE

@dataclass(frozen=True)
class Cfg:
    pass

class Method(CompressionMethod):
    name = "{name}"
    label = "ok"
    description = "Does nothing."
    order = ORDER_SHARE
    config_class = Cfg

    def apply(self, state, layer_configs, progress=None, cancel=None):
        pass
'''


def test_repository_plugins_are_discovered_with_their_metadata() -> None:
    plugins = discover_folder_plugins(PLUGINS)
    by_entry = {p.entry_name: p for p in plugins}
    assert EXPECTED <= set(by_entry)
    for p in plugins:
        assert p.error is None, (p.entry_name, p.error)
        assert p.name == f"squeezestudio-{p.entry_name}"
        assert p.version.count(".") == 2
        assert p.path == PLUGINS / p.entry_name
        assert ":" in p.entry_point


def test_repository_plugins_register(registry) -> None:
    assert EXPECTED <= set(registry.names())
    assert registry.errors == []
    for name in EXPECTED:
        method = registry.get(name)
        assert method.description.endswith(".") and method.paper


def test_broken_plugin_is_listed_with_its_error_and_others_still_load(tmp_path: Path) -> None:
    _write_plugin(tmp_path, "okplug", "ss_test_okplug", GOOD.format(name="okplug"))
    _write_plugin(tmp_path, "broken", "ss_test_broken", "raise RuntimeError('plugin exploded')\n")
    _write_plugin(tmp_path, "notamethod", "ss_test_notamethod", "Method = 42\n")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "pyproject.toml").write_text("[project\nname = ")
    registry = build_registry(plugins=False)
    try:
        found = {p.path.name: p for p in register_folder_plugins(registry, tmp_path)}
    finally:
        for m in ("ss_test_okplug", "ss_test_broken", "ss_test_notamethod"):
            sys.modules.pop(m, None)
    assert found["okplug"].error is None and "okplug" in registry
    assert "RuntimeError: plugin exploded" in found["broken"].error
    assert "not a CompressionMethod" in found["notamethod"].error
    assert "cannot read pyproject.toml" in found["garbled"].error
    reported = dict(registry.errors)
    assert "plugin exploded" in reported["broken"]
    assert set(reported) == {"broken", "notamethod", "garbled"}
    # the repository's plugins are unaffected by a broken neighbour
    register_folder_plugins(registry, PLUGINS)
    assert EXPECTED <= set(registry.names())


def test_load_folder_plugin_never_raises_for_a_missing_module(tmp_path: Path) -> None:
    plugin = FolderPlugin(name="x", version="1", entry_point="ss_test_no_such_module:Method", path=tmp_path)
    assert load_folder_plugin(plugin) is None
    assert "ModuleNotFoundError" in plugin.error


def test_loaded_class_is_the_entry_point_attribute() -> None:
    plugin = next(p for p in discover_folder_plugins(PLUGINS) if p.entry_name == "pow2")
    cls = load_folder_plugin(plugin)
    assert isinstance(cls, type) and issubclass(cls, CompressionMethod) and cls.name == "pow2"


def test_minimal_parser_agrees_with_tomllib_on_every_plugin() -> None:
    for pyproject in sorted(PLUGINS.glob("*/pyproject.toml")):
        full = read_pyproject(pyproject)["project"]
        mini = parse_minimal_pyproject(pyproject.read_text())["project"]
        assert mini["name"] == full["name"] and mini["version"] == full["version"]
        assert mini["entry-points"]["squeezestudio.methods"] == full["entry-points"]["squeezestudio.methods"]


def test_minimal_parser_handles_quotes_and_comments() -> None:
    text = ("# top\n[project]\nname = 'a-b'  # c\nversion = \"0.3.0\"\ndependencies = [\"x\"]\n"
            "[project.entry-points.'squeezestudio.methods']\nfoo = 'm:Cls'\n"
            "[project.entry-points.other]\nbar = \"n:X\"\n")
    data = parse_minimal_pyproject(text)["project"]
    assert data["name"] == "a-b" and data["version"] == "0.3.0"
    assert data["entry-points"] == {"squeezestudio.methods": {"foo": "m:Cls"}}


def test_missing_folder_gives_no_plugins(tmp_path: Path) -> None:
    assert discover_folder_plugins(tmp_path / "absent") == []
