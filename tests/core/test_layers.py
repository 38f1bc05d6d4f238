"""The core's packages import only downwards in the data flow, so the layout stays true.

A static scan of every ``import`` in the source (module level, inside
functions and under ``TYPE_CHECKING`` alike): a package may import itself,
the packages below it in :data:`LAYERS` and the foundation modules; the core
never imports the GUI or the CLI; nothing imports our own modules by string
or hides them behind ``except ImportError``; only the CLI and the GUI ask for
the default method registry. Each rule is also run on a small bad tree, so a
broken scanner cannot pass silently.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Highest first: each package may import only from those after it (and itself).
LAYERS = ("cluster", "session", "search", "measure", "training", "io", "compression", "data", "model")
FOUNDATION = ("errors", "progress", "atomic_write", "limits", "printable", "bounded_parse", "devices")
CORE = "squeezestudio.core"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from squeezestudio.core import io` imports the package io
                yield node.lineno, f"{target}.{alias.name}"


def layer_of(dotted: str) -> str | None:
    """The core package (or foundation module) a dotted name belongs to, None outside the core."""
    parts = dotted.split(".")
    if parts[:2] != ["squeezestudio", "core"] or len(parts) < 3:
        return None
    return parts[2]


def layer_violations(root: Path) -> list[str]:
    """Every import in ``root/squeezestudio/core`` that goes up the flow or out to gui/cli."""
    problems = []
    for path in sorted((root / "squeezestudio" / "core").rglob("*.py")):
        source = layer_of(module_name(path, root))
        for line, target in imported_modules(path, root):
            where = f"{path.relative_to(root)}:{line} imports {target}"
            if target.startswith(("squeezestudio.gui", "squeezestudio.cli")):
                problems.append(f"{where} (the core must not import the GUI or the CLI)")
                continue
            dest = layer_of(target)
            if dest is None or source is None or dest == source or dest in FOUNDATION:
                continue
            if dest not in LAYERS:
                continue  # a name imported from the core package itself, e.g. `from squeezestudio.core import x`
            if source in FOUNDATION:
                problems.append(f"{where} (foundation modules import no stage package)")
            elif source not in LAYERS:
                problems.append(f"{where} ({source} is in no layer; add it to LAYERS)")
            elif LAYERS.index(dest) < LAYERS.index(source):
                problems.append(f"{where} ({source} sits below {dest} in the flow)")
    return problems


def _python_files(root: Path) -> Iterator[Path]:
    for folder in ("squeezestudio", "plugins"):
        yield from sorted((root / folder).rglob("*.py"))


def _is_own_module_string(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("squeezestudio")
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return isinstance(first, ast.Constant) and str(first.value).startswith("squeezestudio")
    return False


def hidden_import_problems(root: Path) -> list[str]:
    """String imports of our modules, and our modules imported inside ``try/except ImportError``."""
    problems = []
    for path in _python_files(root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(root)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and _is_own_module_string(node.args[0]):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__"):
                    problems.append(f"{where}:{node.lineno} imports our module by string")
            if isinstance(node, ast.Try):
                catches_import_error = any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    or isinstance(h.type, ast.Tuple) and any(getattr(e, "id", "") in ("ImportError",
                                                                                    "ModuleNotFoundError")
                                                             for e in h.type.elts)
                    for h in node.handlers)
                if not catches_import_error:
                    continue
                for inner in node.body:
                    for sub in ast.walk(inner):
                        target = (sub.module or "") if isinstance(sub, ast.ImportFrom) and not sub.level else (
                            sub.names[0].name if isinstance(sub, ast.Import) else None)
                        if isinstance(sub, ast.ImportFrom) and sub.level:
                            target = "squeezestudio"
                        if target and target.startswith("squeezestudio"):
                            problems.append(f"{where}:{sub.lineno} imports our module inside "
                                            "try/except ImportError")
    return problems


def default_registry_users(root: Path) -> list[str]:
    """Core modules other than the registry itself that reach for the application's registry."""
    core = root / "squeezestudio" / "core"
    own = core / "compression" / "registry.py"
    return [f"{p.relative_to(root)}" for p in sorted(core.rglob("*.py"))
            if p != own and "default_registry" in p.read_text(encoding="utf-8")]


# ----------------------------------------------------------------------------- the real tree

def test_core_packages_import_only_downwards_in_the_flow() -> None:
    assert layer_violations(ROOT) == []


def test_every_core_package_has_a_layer() -> None:
    packages = {p.name for p in (ROOT / "squeezestudio" / "core").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "squeezestudio" / "core").glob("*.py") if p.stem != "__init__"}
    assert packages == set(LAYERS)
    assert modules == set(FOUNDATION)


def test_no_string_imports_and_no_import_error_fallbacks_for_our_modules() -> None:
    assert hidden_import_problems(ROOT) == []


def test_only_cli_and_gui_supply_the_default_registry() -> None:
    assert default_registry_users(ROOT) == []


# ----------------------------------------------------------------------------- the scanner itself

def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    for package in LAYERS:
        _write(tmp_path, f"squeezestudio/core/{package}/__init__.py", "")
    _write(tmp_path, "squeezestudio/core/errors.py", "")
    _write(tmp_path, "squeezestudio/core/model/spec.py",
           "def f():\n    from squeezestudio.core.compression.registry import default_registry\n")
    _write(tmp_path, "squeezestudio/core/data/view.py", "from ..io import exports\n")
    _write(tmp_path, "squeezestudio/core/measure/plot.py", "import squeezestudio.gui.qt_plot\n")
    _write(tmp_path, "squeezestudio/core/session/ok.py",
           "from squeezestudio.core.model import spec\nfrom squeezestudio.core.errors import X\n")
    _write(tmp_path, "squeezestudio/core/io/codec.py",
           "import importlib\nm = importlib.import_module('squeezestudio.core.compression.registry')\n"
           "try:\n    from squeezestudio.core.compression import fire\nexcept ImportError:\n    fire = None\n")
    _write(tmp_path, "plugins/p/p.py", "__import__(f'squeezestudio.core.{1}')\n")
    return tmp_path


def test_the_scanner_finds_upward_relative_and_gui_imports(bad_tree: Path) -> None:
    found = layer_violations(bad_tree)
    assert any("model/spec.py:2 imports squeezestudio.core.compression.registry" in p for p in found)
    assert any("data/view.py:1 imports squeezestudio.core.io" in p for p in found)
    assert any("measure/plot.py:1" in p and "GUI" in p for p in found)
    assert not any("session/ok.py" in p for p in found)


def test_the_scanner_finds_string_imports_fallbacks_and_registry_users(bad_tree: Path) -> None:
    found = hidden_import_problems(bad_tree)
    assert any("io/codec.py:2 imports our module by string" in p for p in found)
    assert any("io/codec.py:4" in p and "ImportError" in p for p in found)
    assert any("plugins/p/p.py:1" in p for p in found)
    assert default_registry_users(bad_tree) == ["squeezestudio/core/model/spec.py"]


def test_the_cli_imports_the_gui_only_in_the_commands_that_open_it() -> None:
    """``sweep``/``sensitivity`` draw their PNGs with Pillow; only ``gui`` and ``screenshot`` start Qt."""
    launchers = {"cmd_gui.py", "cmd_screenshot.py"}
    found = [f"{p.name}:{line} imports {target}"
             for p in sorted((ROOT / "squeezestudio" / "cli").glob("*.py")) if p.name not in launchers
             for line, target in imported_modules(p, ROOT)
             if target.startswith(("squeezestudio.gui", "PySide6", "pyqtgraph"))]
    assert found == []


def test_architecture_doc_names_every_module_and_only_paths_that_exist() -> None:
    """docs/ARCHITECTURE.md matches the tree: each module is listed, each listed path is there."""
    import re

    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    package = ROOT / "squeezestudio"
    missing = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py") and p.name not in doc
               and not (p.parent.name == "gui" and p.name.startswith("qt_"))  # `gui/qt_*.py`
               and not (p.parent.name == "cli" and p.name.startswith("cmd_"))]  # `cli/cmd_*.py`
    assert missing == []
    listed = set(re.findall(r"`((?:core|cli|gui)/[\w/]+(?:\.py|/))`", doc))
    assert listed and [p for p in sorted(listed) if not (package / p).exists()] == []
    for layer in LAYERS:
        assert f"`core/{layer}/`" in doc


def test_plugins_use_only_the_public_plugin_api() -> None:
    found = [f"{p.relative_to(ROOT)}:{line} imports {target}"
             for p in sorted((ROOT / "plugins").rglob("*.py"))
             for line, target in imported_modules(p, ROOT)
             if target.startswith("squeezestudio.") and not target.startswith("squeezestudio.plugin_api")]
    assert found == []
