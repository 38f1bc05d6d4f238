"""Choose the channels to remove: coupled groups, ranked by the L1 norms of their filters.

The channel graph (:mod:`.channel_graph`) says which channels are one
channel in disguise (a residual stage, a squeeze-excitation gate, the halves
of a shuffle). Producer layers that share such a class form one *coupled
group*: every layer in it loses the same channels. A group is pruned when
any of its layers is in the recipe, with the largest ratio asked for among
them (so naming one convolution of a ResNet stage prunes the stage; the log
says which layers went with it). A class's importance is the sum, over the
weight rows it owns, of each row's L1 norm divided by the mean row norm of
its layer (so wide and narrow layers weigh alike) -- Li et al.'s criterion
extended to groups, as Torch-Pruning's group importance does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from squeezestudio_structured.channel_graph import ChannelGraph, Member
from squeezestudio_structured.surgery import LayerCut

_OWNS_ROW = ("out", "dw")


class GroupConfig(Protocol):
    ratio: float
    min_channels: int


@dataclass
class CoupledGroup:
    """Producer layers that lose the same channels, and the prunable channel classes they share."""

    layers: list[str]
    classes: list[int]


def _row_norms(model: nn.Module, layer: str) -> torch.Tensor:
    w = model.get_submodule(layer).weight.detach()
    norms = w.abs().reshape(w.shape[0], -1).sum(1).double()
    return norms / norms.mean().clamp_min(1e-12)


def coupled_groups(graph: ChannelGraph) -> tuple[list[CoupledGroup], dict[int, list[int]]]:
    """The coupled groups (in graph order) and every class's elements."""
    classes = graph.classes()
    owner: dict[str, str] = {layer: layer for layer in graph.producers}

    def find(x: str) -> str:
        while owner[x] != x:
            owner[x] = owner[owner[x]]
            x = owner[x]
        return x

    layer_roots: dict[str, list[int]] = {}
    for layer, labels in graph.producers.items():
        roots = list(dict.fromkeys(graph.find(e) for e in labels))
        layer_roots[layer] = [r for r in roots if graph.fixed_reason(classes[r]) is None]
    class_layers: dict[int, list[str]] = {}
    for layer, roots in layer_roots.items():
        for r in roots:
            class_layers.setdefault(r, []).append(layer)
    for layers in class_layers.values():
        for other in layers[1:]:
            owner[find(other)] = find(layers[0])
    groups: dict[str, CoupledGroup] = {}
    for layer in graph.producers:
        if layer_roots[layer]:
            groups.setdefault(find(layer), CoupledGroup([], [])).layers.append(layer)
    for root, layers in class_layers.items():
        groups[find(layers[0])].classes.append(root)
    for group in groups.values():
        group.classes.sort()
    return list(groups.values()), classes


def plan_cuts(model: nn.Module, graph: ChannelGraph, configs: dict[str, GroupConfig],
              log: list[str]) -> dict[str, LayerCut]:
    """The cut of every layer that changes when the recipe's layers lose their weakest channels."""
    groups, classes = coupled_groups(graph)
    members = {root: [m for e in elements for m in graph.members.get(e, [])] for root, elements in classes.items()}
    in_group = {layer for g in groups for layer in g.layers}
    for layer in configs:
        if layer in in_group:
            continue
        labels = graph.producers.get(layer)
        reason = graph.fixed_reason([e for lab in (labels or []) for e in classes[graph.find(lab)]]) if labels \
            else "only convolutions and linear layers that are called once lose channels"
        log.append(f"structured: left {layer} alone: {reason or 'none of its channels can be removed'}")
    removed: set[int] = set()
    dims = _dimension_classes(members)
    for group in groups:
        asked = [layer for layer in group.layers if layer in configs]
        if not asked:
            continue
        ratio = max(float(configs[layer].ratio) for layer in asked)
        keep_at_least = max(1, max(int(configs[layer].min_channels) for layer in asked))
        n = len(group.classes)
        count = min(int(round(ratio * n)), max(0, n - keep_at_least))
        if count <= 0:
            continue
        norms = {layer: _row_norms(model, layer) for layer in
                 {m.layer for r in group.classes for m in members[r] if m.role in _OWNS_ROW}}
        score = {r: sum(float(norms[m.layer][m.position]) for m in members[r] if m.role in _OWNS_ROW)
                 for r in group.classes}
        order = sorted(group.classes, key=lambda r: (score[r], r))
        chosen = set(order[:count])
        _keep_every_layer_alive(chosen, removed, dims, score)
        removed |= chosen
        if len(group.layers) > 1:
            shown = ", ".join(group.layers[:4]) + (f" and {len(group.layers) - 4} more" if len(group.layers) > 4 else "")
            log.append(f"structured: removed {len(chosen)} of {n} coupled channels from {shown}")
    return _cuts(model, removed, members)


def _dimension_classes(members: dict[int, list[Member]]) -> dict[tuple[str, str], set[int]]:
    """(layer, "in"/"out") -> the classes of all its positions."""
    dims: dict[tuple[str, str], set[int]] = {}
    for root, ms in members.items():
        for m in ms:
            dims.setdefault((m.layer, "in" if m.role == "in" else "out"), set()).add(root)
    return dims


def _keep_every_layer_alive(chosen: set[int], removed: set[int], dims: dict[tuple[str, str], set[int]],
                            score: dict[int, float]) -> None:
    """Give back the best chosen class of any layer dimension that would otherwise lose every channel."""
    while True:
        dead = next((roots for roots in dims.values() if roots & chosen and roots <= (chosen | removed)), None)
        if dead is None:
            return
        chosen.discard(max(dead & chosen, key=lambda r: (score[r], r)))


def _cuts(model: nn.Module, removed: set[int], members: dict[int, list[Member]]) -> dict[str, LayerCut]:
    dropped: dict[tuple[str, str], set[int]] = {}
    for r in removed:
        for m in members[r]:
            dropped.setdefault((m.layer, "in" if m.role == "in" else "out"), set()).add(m.position)
    cuts: dict[str, LayerCut] = {}
    for (layer, side), gone in dropped.items():
        module = model.get_submodule(layer)
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            total = module.num_features
        else:
            total = module.weight.shape[0] if side == "out" else module.weight.shape[1]
        kept = [i for i in range(total) if i not in gone]
        cut = cuts.setdefault(layer, LayerCut())
        if side == "out":
            cut.keep_out = kept
        else:
            cut.keep_in = kept
    return dict(sorted(cuts.items()))
