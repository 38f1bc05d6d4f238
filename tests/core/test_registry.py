"""The method registry: built-ins in order, clear unknown-method errors, broken plugins recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from torch import nn

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.method import ORDER_PRUNE, CompressionMethod
from squeezestudio.core.compression.registry import (
    MethodRegistry, UnknownMethodError, build_registry, default_registry)
from squeezestudio.core.errors import PluginError, RecipeError


@dataclass(frozen=True)
class _NoOptions:
    strength: float = param(1.0, minimum=0.0, help="How hard.")


class _FakeMethod(CompressionMethod):
    name = "fake"
    label = "Fake"
    description = "Does nothing."
    order = ORDER_PRUNE + 1
    config_class = _NoOptions

    def apply(self, state: Any, layer_configs: dict, progress=None, cancel=None) -> None:
        return None


class _EntryPoint:
    def __init__(self, name: str, target: Any = None, error: Exception | None = None) -> None:
        self.name, self._target, self._error = name, target, error

    def load(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._target


def test_builtins_are_listed_in_application_order() -> None:
    registry = build_registry(plugins=False)
    names = registry.names()
    assert names[-4:-1] == ["prune", "cluster", "quantize"] or names[-4:-1] == ["prune", "quantize", "cluster"]
    assert names[-1] == "activations"  # ranges are measured on the model with its final weights
    assert names.index("prune") < names.index("cluster") and names.index("prune") < names.index("quantize")
    orders = [m.order for m in registry.methods()]
    assert orders == sorted(orders)
    if "fire" in names:
        assert names[0] == "fire"
    assert registry.get("cluster").exclusive_with == ("quantize",)


def test_unknown_method_names_the_known_ones() -> None:
    registry = build_registry(plugins=False)
    with pytest.raises(UnknownMethodError, match="unknown method 'prun'; known: .*prune"):
        registry.get("prun")
    with pytest.raises(RecipeError):
        registry.get("nope")
    with pytest.raises(PluginError):
        registry.get("nope")


def test_failing_plugin_is_recorded_not_fatal() -> None:
    registry = build_registry(entry_points=[
        _EntryPoint("broken", error=ImportError("No module named 'missing_dep'")),
        _EntryPoint("wrongtype", target=42),
        _EntryPoint("clash", target=type("Other", (_FakeMethod,), {"name": "prune"})),
        _EntryPoint("good", target=_FakeMethod),
    ])
    assert "fake" in registry.names() and registry.names().index("fake") == registry.names().index("prune") + 1
    errors = dict(registry.errors)
    assert set(errors) == {"broken", "wrongtype", "clash"}
    assert "missing_dep" in errors["broken"] and "ImportError" in errors["broken"]
    assert "not a CompressionMethod" in errors["wrongtype"]
    assert "already registered" in errors["clash"]
    assert type(registry.get("prune")).__name__ == "MagnitudePruning"


def test_register_accepts_instances_and_rejects_junk() -> None:
    registry = MethodRegistry()
    instance = _FakeMethod()
    assert registry.register(instance) is instance
    assert registry.get("fake") is instance and "fake" in registry
    with pytest.raises(PluginError):
        registry.register(nn.Linear)  # type: ignore[arg-type]


def test_default_registry_is_cached_and_fresh_ones_are_independent() -> None:
    assert default_registry() is default_registry()
    fresh = build_registry(plugins=False)
    fresh.register(_FakeMethod)
    assert "fake" in fresh and "fake" not in build_registry(plugins=False)
