"""Rebuild a module from its :class:`ArchitectureSpec`, replaying recorded modifications.

The model stage builds the base architecture (zoo entry or graph); the
modifications a compression method recorded (e.g. Fire substitution) are
replayed here, by the method that recorded them, looked up in the registry
the caller passes. No global registry is consulted, so a test or a tool can
rebuild with exactly the methods it chose.
"""

from __future__ import annotations

from torch import nn

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.model.architecture_spec import build_base_module
from squeezestudio.core.model.handle import ArchitectureSpec

__all__ = ["build_module"]


def build_module(spec: ArchitectureSpec, *, registry: MethodRegistry) -> nn.Module:
    """A freshly built module for ``spec``, modifications included (load a state dict next).

    Raises :class:`~squeezestudio.core.compression.registry.UnknownMethodError`
    when a modification names a method ``registry`` does not hold.
    """
    module = build_base_module(spec)
    for modification in spec.modifications:
        rebuilt = registry.get(modification["method"]).rebuild(module, modification)
        module = module if rebuilt is None else rebuilt
    return module
