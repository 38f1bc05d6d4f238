"""Fixtures of the plugin tests: the repository's plugins registered (default and fresh registries)."""

from __future__ import annotations

import pytest

from plugin_helpers import PLUGINS
from squeezestudio.core.compression.plugin_folder import register_folder_plugins
from squeezestudio.core.compression.registry import build_registry, default_registry


# At import (before the test modules are collected): loading a .sqz looks methods up in the
# default registry, and the tests import the plugin modules by name, which needs their folders
# on sys.path -- both are what registering the repository's plugins folder does.
register_folder_plugins(default_registry(), PLUGINS)


@pytest.fixture()
def registry():
    """A fresh registry: built-ins plus the repository's plugins folder."""
    reg = build_registry(plugins=False)
    register_folder_plugins(reg, PLUGINS)
    return reg
