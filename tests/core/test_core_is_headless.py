"""The core must never import Qt: it runs in scripts, the CLI and CI without a display."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import squeezestudio

CORE = Path(squeezestudio.__file__).parent / "core"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "squeezestudio.gui")


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_core_module_imports_qt_statically():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10, "the core package looks empty"
    for path in files:
        for name in _imported_names(path):
            if name.split(".")[0] in FORBIDDEN or name.startswith("squeezestudio.gui"):
                offenders.append(f"{path.relative_to(CORE)} imports {name}")
    assert offenders == []


def test_importing_every_core_module_loads_no_qt():
    """Import all core modules in a fresh interpreter and check sys.modules."""
    modules = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE.parent.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m.startswith('squeezestudio.gui')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
