"""Structured (filter) pruning: physically remove channels, together with every layer coupled to them.

Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017): rank filters
by the L1 norm of their weights and remove the smallest ``ratio`` of them.
Unlike magnitude pruning, the result is a smaller *dense* model -- its plain
checkpoint is smaller and inference is faster with no sparse kernels.

Removing a filter removes a channel everywhere it goes. A channel graph
traced with torch.fx (:mod:`.channel_graph`) finds every layer that sees it
-- BatchNorms, depthwise convolutions, the next layers' inputs (through
concatenations at the right offset, and a classifier after a flatten) -- and
the channels that must go together: those added in a residual connection,
gated by a squeeze-excitation block, or split and shuffled between branches
(ShuffleNet). Such coupled channels are removed as one group
(:mod:`.grouping`), so ResNets, MobileNets, EfficientNets, DenseNets and
ShuffleNets shrink at every layer. Channels that reach the model's output
or an operation the graph does not know are kept, with a log line saying why.

All choices are made on the original model and applied at once. The new
layer sizes are recorded with ``state.record_modification`` and
:meth:`rebuild` makes the same shapes when a .sqz file is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.plugin_api import (
    ORDER_ARCHITECTURE,
    ArchitectureMismatchError,
    CancelToken,
    check,
    CodecError,
    CompressionMethod,
    CompressionState,
    get_module,
    make_config,
    param,
    ProgressCallback,
    RecipeError,
    replace_module,
    report,
)
from squeezestudio_structured.channel_graph import build_channel_graph
from squeezestudio_structured.grouping import plan_cuts
from squeezestudio_structured.surgery import empty_layer, new_sizes, shrink

__all__ = ["StructuredConfig", "StructuredPruning", "filters_to_keep", "plan_cuts"]


@dataclass(frozen=True)
class StructuredConfig:
    """Knobs of filter pruning."""

    ratio: float = param(0.5, minimum=0.0, maximum=0.95,
                         help="share of each layer's channels removed (coupled layers go together)")
    min_channels: int = param(1, minimum=1, help="never keep fewer output channels than this")


def filters_to_keep(conv: nn.Conv2d, config: StructuredConfig) -> list[int]:
    """Indices of the filters with the largest L1 norms, in their original order."""
    n = conv.out_channels
    keep = max(min(n, config.min_channels), n - int(round(config.ratio * n)))
    norms = conv.weight.detach().abs().reshape(n, -1).sum(1)
    order = torch.argsort(norms, descending=True, stable=True)
    return sorted(int(i) for i in order[:keep])


def _config(layer: str, cfg: Any) -> StructuredConfig:
    if isinstance(cfg, StructuredConfig):
        return cfg
    return make_config(StructuredConfig, cfg or {}, f"structured on {layer}")


class StructuredPruning(CompressionMethod):
    """Plugin method ``structured``."""

    name = "structured"
    label = "Filter pruning (structured)"
    description = ("Removes the channels with the smallest L1 norms, together with every layer coupled to "
                   "them (residuals, depthwise, concatenations, squeeze-excitation), giving a smaller and "
                   "faster dense model.")
    order = ORDER_ARCHITECTURE
    config_class = StructuredConfig
    layer_types = (nn.Conv2d, nn.Linear)
    paper = ("Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017; "
             "Fang et al., DepGraph: Towards Any Structural Pruning, CVPR 2023")

    def applies_to(self, module: nn.Module) -> bool:
        """Layers that own their output channels: ungrouped convolutions and linear layers.

        (Depthwise convolutions and BatchNorms shrink with the layer that feeds them.)
        """
        return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> None:
        check(cancel)
        report(progress, 0.0, "structured: tracing the model")
        configs = {name: _config(name, cfg) for name, cfg in layer_configs.items()}
        example = state.handle.input_spec.example(1)
        try:
            graph = build_channel_graph(state.module, example)
        except Exception as exc:  # tracing runs model code; report it as a recipe problem
            raise RecipeError(f"structured pruning cannot trace this model with torch.fx "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        cuts = plan_cuts(state.module, graph, configs, state.log)
        shapes: dict[str, dict[str, Any]] = {}
        params_before = sum(p.numel() for p in state.module.parameters())
        for i, (layer, cut) in enumerate(cuts.items()):
            check(cancel)
            old = get_module(state.module, layer)
            out, inp = new_sizes(old, cut)
            new = shrink(old, cut)
            shapes[layer] = {"type": type(old).__name__, "out": out, "in": inp}
            if isinstance(new, nn.Conv2d):
                shapes[layer]["groups"] = new.groups
            replace_module(state.module, layer, new)
            for key in (f"{layer}.weight", f"{layer}.bias"):
                state.encodings.pop(key, None)
            report(progress, (i + 1) / max(1, len(cuts)), f"structured: {layer}")
        if shapes:
            state.record_modification({"method": self.name, "shapes": shapes})
        params_after = sum(p.numel() for p in state.module.parameters())
        pruned = [name for name, cut in cuts.items() if cut.keep_out is not None and name in graph.producers]
        state.log.append(f"structured: removed channels of {len(pruned)} layers ({len(cuts)} layers changed); "
                         f"{params_before} -> {params_after} parameters")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Give every recorded layer its recorded size (weights come from the file)."""
        try:
            shapes = {str(k): (str(v["type"]), int(v["out"]), int(v["in"]), int(v.get("groups", 0)))
                      for k, v in dict(modification["shapes"]).items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CodecError("a structured pruning recorded in the file is incomplete") from None
        for layer, (kind, out, inp, groups) in shapes.items():
            current = get_module(module, layer)
            if type(current).__name__ != kind or out < 1 or inp < 1 or groups < 0 or \
                    (groups and (out % groups or inp % groups)):
                raise ArchitectureMismatchError(f"layer {layer!r} is not the {kind} that structured pruning "
                                                "was recorded for")
            replace_module(module, layer, empty_layer(current, out, inp, groups))
        return module
