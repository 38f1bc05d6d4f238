"""GUI tests run offscreen; shared fixtures for the main-window side of the GUI."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from squeezestudio.core.compression.config import param  # noqa: E402


@dataclass
class ToyPruneConfig:
    sparsity: float = param(0.5, minimum=0.0, maximum=0.99, help="Fraction of weights set to zero.")


@dataclass
class ToyBitsConfig:
    bits: int = param(5, minimum=1, maximum=8, help="Bits per weight.")


class ToyPrune:
    name, label, description, config_class = "prune", "Pruning", "Zero the smallest weights.", ToyPruneConfig


class ToyBits:
    name, label, description, config_class = "cluster", "Clustering", "Share weights.", ToyBitsConfig


@pytest.fixture
def toy_methods():
    """Two method-like objects with typed configs (the controls only read these attributes)."""
    return [ToyPrune(), ToyBits()]


@pytest.fixture
def app_settings(tmp_path):
    """Settings in a temporary INI file, so tests never touch the user's."""
    from squeezestudio.gui.qt_settings import AppSettings, make_settings
    return AppSettings(make_settings(str(tmp_path / "settings.ini")))


@pytest.fixture(autouse=True)
def _autosave_in_tmp(tmp_path, monkeypatch):
    """Windows autosave on close: keep those files out of the user's home."""
    monkeypatch.setenv("SQUEEZESTUDIO_HOME", str(tmp_path / "squeezestudio_home"))
