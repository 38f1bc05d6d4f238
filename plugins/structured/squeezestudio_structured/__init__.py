"""Structured (filter) pruning: physically remove a convolution's weakest output channels.

Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017): rank a
convolution's filters by the L1 norm of their weights and remove the smallest
``ratio`` of them. Unlike magnitude pruning, the result is a smaller *dense*
model -- its plain checkpoint is smaller and inference is faster with no
sparse kernels. Removing a filter removes an output channel, so every layer
that reads that channel shrinks with it: the BatchNorm after it, the next
convolution's input channels (through SqueezeNet's expand concatenation at the
right offset), the classifier's inputs after a flatten. These dependencies
come from tracing the model with torch.fx (:mod:`.dependencies`); a
convolution whose channels are added to another tensor (a residual
connection), feed the model's output or reach an operation the analysis does
not know is left alone, with a log line saying why.

All choices are made on the original model and applied at once, so pruning
several layers that feed one concatenation stays consistent. The new layer
sizes are recorded with ``state.record_modification`` and :meth:`rebuild`
makes the same shapes when a .sqz file is loaded.
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
from squeezestudio_structured.dependencies import Unprunable, channel_uses, trace
from squeezestudio_structured.surgery import LayerCut, empty_layer, new_sizes, shrink

__all__ = ["StructuredConfig", "StructuredPruning", "filters_to_keep", "plan_cuts"]


@dataclass(frozen=True)
class StructuredConfig:
    """Knobs of filter pruning."""

    ratio: float = param(0.5, minimum=0.0, maximum=0.95, help="share of each convolution's filters removed")
    min_channels: int = param(1, minimum=1, help="never keep fewer output channels than this")


def filters_to_keep(conv: nn.Conv2d, config: StructuredConfig) -> list[int]:
    """Indices of the filters with the largest L1 norms, in their original order."""
    n = conv.out_channels
    keep = max(min(n, config.min_channels), n - int(round(config.ratio * n)))
    norms = conv.weight.detach().abs().reshape(n, -1).sum(1)
    order = torch.argsort(norms, descending=True, stable=True)
    return sorted(int(i) for i in order[:keep])


def plan_cuts(model: nn.Module, example: torch.Tensor, configs: dict[str, StructuredConfig],
              log: list[str]) -> dict[str, LayerCut]:
    """The cut of every layer that changes, from the convolutions of ``configs`` that can be pruned."""
    mg = trace(model, example)
    cuts: dict[str, LayerCut] = {}
    removed_in: dict[str, set[int]] = {}
    for name, config in configs.items():
        conv = get_module(model, name)
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            log.append(f"structured: left {name} alone: only ungrouped Conv2d layers lose filters")
            continue
        keep = filters_to_keep(conv, config)
        if len(keep) == conv.out_channels:
            continue
        try:
            uses = channel_uses(mg, name)
        except Unprunable as why:
            log.append(f"structured: left {name} alone: {why}")
            continue
        drop = sorted(set(range(conv.out_channels)) - set(keep))
        cuts.setdefault(name, LayerCut()).keep_out = keep
        for use in uses:
            removed_in.setdefault(use.layer, set()).update(use.positions(drop))
    for layer, gone in removed_in.items():
        module = get_module(model, layer)
        total = module.num_features if isinstance(module, nn.BatchNorm2d) else module.weight.shape[1]
        kept = [i for i in range(total) if i not in gone]
        cut = cuts.setdefault(layer, LayerCut())
        if isinstance(module, nn.BatchNorm2d):
            cut.keep_out = kept
        else:
            cut.keep_in = kept
    return cuts


def _config(layer: str, cfg: Any) -> StructuredConfig:
    if isinstance(cfg, StructuredConfig):
        return cfg
    return make_config(StructuredConfig, cfg or {}, f"structured on {layer}")


class StructuredPruning(CompressionMethod):
    """Plugin method ``structured``."""

    name = "structured"
    label = "Filter pruning (structured)"
    description = ("Removes the convolution filters with the smallest L1 norms and shrinks the layers "
                   "that use them, giving a smaller and faster dense model.")
    order = ORDER_ARCHITECTURE
    config_class = StructuredConfig
    layer_types = (nn.Conv2d,)
    paper = "Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017"

    def applies_to(self, module: nn.Module) -> bool:
        return isinstance(module, nn.Conv2d) and module.groups == 1

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> None:
        check(cancel)
        report(progress, 0.0, "structured: tracing the model")
        configs = {name: _config(name, cfg) for name, cfg in layer_configs.items()}
        example = state.handle.input_spec.example(1)
        try:
            cuts = plan_cuts(state.module, example, configs, state.log)
        except Exception as exc:  # tracing runs model code; report it as a recipe problem
            raise RecipeError(f"structured pruning cannot trace this model with torch.fx "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        shapes: dict[str, dict[str, Any]] = {}
        params_before = sum(p.numel() for p in state.module.parameters())
        for i, (layer, cut) in enumerate(cuts.items()):
            check(cancel)
            old = get_module(state.module, layer)
            out, inp = new_sizes(old, cut)
            shapes[layer] = {"type": type(old).__name__, "out": out, "in": inp}
            replace_module(state.module, layer, shrink(old, cut))
            for key in (f"{layer}.weight", f"{layer}.bias"):
                state.encodings.pop(key, None)
            report(progress, (i + 1) / max(1, len(cuts)), f"structured: {layer}")
        if shapes:
            state.record_modification({"method": self.name, "shapes": shapes})
        params_after = sum(p.numel() for p in state.module.parameters())
        pruned = [name for name, cut in cuts.items() if cut.keep_out is not None and name in configs]
        state.log.append(f"structured: removed filters of {len(pruned)} convolutions; "
                         f"{params_before} -> {params_after} parameters")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Give every recorded layer its recorded size (weights come from the file)."""
        try:
            shapes = {str(k): (str(v["type"]), int(v["out"]), int(v["in"]))
                      for k, v in dict(modification["shapes"]).items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CodecError("a structured pruning recorded in the file is incomplete") from None
        for layer, (kind, out, inp) in shapes.items():
            current = get_module(module, layer)
            if type(current).__name__ != kind or out < 1 or inp < 1:
                raise ArchitectureMismatchError(f"layer {layer!r} is not the {kind} that structured pruning "
                                                "was recorded for")
            replace_module(module, layer, empty_layer(current, out, inp))
        return module
