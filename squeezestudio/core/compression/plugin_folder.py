"""Plugins found in a folder (``plugins/<name>/pyproject.toml``) rather than installed.

Entry points only see installed distributions. A checkout of SqueezeStudio
ships its plugins in ``plugins/``; reading their ``pyproject.toml`` lets the
application offer them without ``pip install``. Each
``[project.entry-points."squeezestudio.methods"]`` line becomes one
:class:`FolderPlugin`. Loading puts the plugin's folder on ``sys.path`` only
when its module is not already importable (an installed copy wins), then
imports the entry point. Whatever goes wrong -- an unreadable
``pyproject.toml``, an import that raises, an attribute that is not a
:class:`CompressionMethod` -- is kept as the plugin's ``error`` text and never
raised, so one broken plugin cannot stop the others or the application.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import squeezestudio
from squeezestudio.core.compression.method import CompressionMethod

ENTRY_POINT_GROUP = "squeezestudio.methods"

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - exercised on 3.10 only
    _toml = None  # type: ignore[assignment]


@dataclass
class FolderPlugin:
    """One entry point of a plugin folder; ``error`` holds why it cannot be used, if it cannot."""

    name: str
    version: str
    entry_point: str  # "module:attr"
    path: Path
    error: Optional[str] = None
    entry_name: str = ""


def repository_plugins_folder() -> Path:
    """The ``plugins/`` folder next to the ``squeezestudio`` package of this checkout."""
    return Path(squeezestudio.__file__).resolve().parents[1] / "plugins"


# ----------------------------------------------------------------------------- pyproject reading

_SECTION = re.compile(r"^\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY_VALUE = re.compile(r"""^\s*("[^"]+"|'[^']+'|[A-Za-z0-9_.\-]+)\s*=\s*("[^"]*"|'[^']*')\s*(#.*)?$""")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _section_name(header: str) -> str:
    """``project.entry-points."squeezestudio.methods"`` -> ``project.entry-points.squeezestudio.methods``."""
    parts = re.findall(r"""("[^"]*"|'[^']*'|[^.\s]+)""", header)
    return ".".join(_unquote(p) for p in parts)


def parse_minimal_pyproject(text: str) -> dict[str, Any]:
    """The few pyproject fields discovery needs, without ``tomllib`` (Python 3.10).

    Reads string values of ``[project]`` and of the entry-point table; anything
    else (arrays, inline tables, other sections) is ignored, which is enough
    for the fields used here.
    """
    project: dict[str, Any] = {}
    entries: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION.match(line)
        if header and not line.startswith("[["):
            section = _section_name(header.group(1))
            continue
        pair = _KEY_VALUE.match(line)
        if not pair:
            continue
        key, value = _unquote(pair.group(1)), _unquote(pair.group(2))
        if section == "project":
            project[key] = value
        elif section == f"project.entry-points.{ENTRY_POINT_GROUP}":
            entries[key] = value
    if entries:
        project["entry-points"] = {ENTRY_POINT_GROUP: entries}
    return {"project": project} if project else {}


def read_pyproject(path: Path) -> dict[str, Any]:
    """The parsed ``pyproject.toml`` (tomllib when available, else the minimal parser)."""
    text = path.read_text(encoding="utf-8")
    if _toml is not None:
        return _toml.loads(text)
    return parse_minimal_pyproject(text)


def _plugins_of(folder: Path) -> list[FolderPlugin]:
    pyproject = folder / "pyproject.toml"
    try:
        data = read_pyproject(pyproject)
        project = data.get("project", {})
        name = str(project.get("name", folder.name))
        version = str(project.get("version", "0"))
        group = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    except Exception as exc:  # unreadable or malformed: report it, go on
        return [FolderPlugin(name=folder.name, version="?", entry_point="", path=folder,
                             error=f"cannot read {pyproject.name}: {exc}")]
    if not isinstance(group, dict) or not group:
        return [FolderPlugin(name=name, version=version, entry_point="", path=folder,
                             error=f"{pyproject.name} declares no entry point in the group "
                                   f"{ENTRY_POINT_GROUP!r}")]
    plugins = []
    for entry_name, target in group.items():
        error = None if re.fullmatch(r"[\w.]+:[\w.]+", str(target)) else \
            f"the entry point {entry_name!r} = {target!r} is not of the form 'module:attribute'"
        plugins.append(FolderPlugin(name=name, version=version, entry_point=str(target), path=folder,
                                    error=error, entry_name=str(entry_name)))
    return plugins


def discover_folder_plugins(folder: Path) -> list[FolderPlugin]:
    """Every ``folder/*/pyproject.toml``'s method entry points, sorted by folder name.

    A missing ``folder`` gives an empty list (a wheel install has no plugins folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found: list[FolderPlugin] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "pyproject.toml").is_file():
            found.extend(_plugins_of(sub))
    return found


# ----------------------------------------------------------------------------- loading

def _import_root(plugin: FolderPlugin) -> Path:
    """Where the plugin's modules live: ``src/`` layout or the folder itself."""
    src = plugin.path / "src"
    return src if src.is_dir() else plugin.path


def load_folder_plugin(plugin: FolderPlugin) -> Optional[type[CompressionMethod]]:
    """Import the plugin's entry point; on failure set ``plugin.error`` and return None.

    The folder goes on ``sys.path`` only when the module cannot already be
    imported (an installed or editable copy is preferred, so a class is never
    imported twice under one name).
    """
    if plugin.error is not None:
        return None
    module_name, _, attr = plugin.entry_point.partition(":")
    try:
        if importlib.util.find_spec(module_name.split(".")[0]) is None:
            root = str(_import_root(plugin).resolve())
            if root not in sys.path:
                sys.path.append(root)
            importlib.invalidate_caches()
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        plugin.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None
    if isinstance(target, CompressionMethod):
        target = type(target)
    if not (isinstance(target, type) and issubclass(target, CompressionMethod)):
        plugin.error = f"{plugin.entry_point} is {target!r}, not a CompressionMethod subclass"
        return None
    return target


def register_folder_plugins(registry: Any, folder: Optional[Path] = None) -> list[FolderPlugin]:
    """Load every plugin of ``folder`` (default: the repository's) into ``registry``.

    ``registry`` is a :class:`~squeezestudio.core.compression.registry.MethodRegistry`;
    failures are appended to ``registry.errors`` as ``(plugin name, message)``.
    A method already registered under the same class (the plugin is also
    installed) is left as it is. Returns the plugins with their errors.
    """
    plugins = discover_folder_plugins(repository_plugins_folder() if folder is None else folder)
    for plugin in plugins:
        cls = load_folder_plugin(plugin)
        if cls is not None:
            try:
                registry.register(cls, origin=f"plugins/{plugin.path.name} {plugin.version}".strip())
            except Exception as exc:  # e.g. a name clash with another method
                plugin.error = str(exc) or type(exc).__name__
        if plugin.error is not None:
            label = plugin.entry_name or plugin.name
            if (label, plugin.error) not in registry.errors:
                registry.errors.append((label, plugin.error))
    return plugins
