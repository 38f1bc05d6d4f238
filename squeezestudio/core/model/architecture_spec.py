"""Describe a model's architecture as data, and rebuild the module from that data.

A .sqz file stores weights plus an :class:`ArchitectureSpec`, so it reopens
without the user's original model file. Three kinds exist:

- ``zoo``: a built-in architecture name and its constructor arguments;
- ``graph``: a weight-free graph of allow-listed torch modules and functions
  (see :mod:`squeezestudio.core.model.graph_spec`), produced by the ONNX converter
  or by tracing a trusted module with torch.fx. Rebuilding one executes no
  code from the file;
- either of the above plus ``modifications``: architecture changes recorded
  by compression methods (e.g. Fire substitution). This module builds the
  base only; :func:`squeezestudio.core.compression.replay.build_module`
  replays the modifications through a method registry, because the model
  stage sits below the compression stage and must not know its methods.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from squeezestudio.core.model.graph_spec.fx_describe import describe_with_fx
from squeezestudio.core.model.graph_spec.module import GraphSpecError, SpecGraphModule, build_graph_module
from squeezestudio.core.model.handle import ArchitectureSpec
from squeezestudio.core.model.zoo import build_model

__all__ = ["describe_architecture", "build_base_module", "GraphSpecError"]


def describe_architecture(module: nn.Module, fallback: Optional[ArchitectureSpec] = None) -> ArchitectureSpec:
    """An :class:`ArchitectureSpec` that rebuilds ``module`` (weights not included).

    A module built from a graph (ONNX import, an earlier description) is
    described by the graph it carries; anything else is traced with torch.fx.
    If that fails (untraceable control flow, a layer type not on the
    allow-list), ``fallback`` is returned when given; otherwise
    :class:`GraphSpecError` says why, so the caller can fall back itself.
    """
    name = type(module).__name__
    if isinstance(module, SpecGraphModule):
        return ArchitectureSpec(kind="graph", name=fallback.name if fallback else name, graph=module.graph_spec)
    try:
        graph = describe_with_fx(module)
    except GraphSpecError:
        if fallback is not None:
            return fallback
        raise
    return ArchitectureSpec(kind="graph", name=name, graph=graph)


def build_base_module(spec: ArchitectureSpec) -> nn.Module:
    """A freshly built module for ``spec`` WITHOUT its ``modifications``.

    Weights are initialised or zero: load a state dict next. A spec with
    modifications needs :func:`squeezestudio.core.compression.replay.build_module`.
    """
    if spec.kind == "zoo":
        return build_model(spec.name, **spec.kwargs)
    if spec.kind == "graph":
        if spec.graph is None:
            raise GraphSpecError("the architecture is marked as a graph but carries no graph description")
        return build_graph_module(spec.graph)
    raise GraphSpecError(f"unknown architecture kind {spec.kind!r}; this file may need a newer SqueezeStudio")
