"""Fixtures of the plugin tests: the repository's plugins registered (default and fresh registries)."""

from __future__ import annotations

import pytest

from plugin_helpers import PLUGINS
from squeezestudio.core.compression.plugin_folder import register_folder_plugins
from squeezestudio.core.compression.registry import build_registry

# The tests import the plugin modules by name: pyproject.toml's pytest ``pythonpath`` puts their
# folders on sys.path. Nothing is registered at import; a test gets its registry from a fixture.


@pytest.fixture()
def registry():
    """A fresh registry: built-ins plus the repository's plugins folder."""
    reg = build_registry(plugins=False)
    register_folder_plugins(reg, PLUGINS)
    return reg
