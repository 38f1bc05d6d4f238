"""The one template of every layer substitution (Fire, depthwise, shuffle, low rank, ...).

A substitution replaces a layer by a new module of ordinary layers. Every such
method does the same steps per layer, so they live here once:

1. ``skip_reason`` -- leave layers the method cannot replace alone, with a log line;
2. :meth:`SubstitutionMethod.build` -- the uninitialised new module and the
   JSON record that rebuilds it from a .sqz (the method's own part);
3. :meth:`SubstitutionMethod.init` -- a data-free start from the old layer's weights;
4. :meth:`SubstitutionMethod.fit` -- with calibration images, fit the new module to
   the ORIGINAL model's output of that layer (``fit_to_original``), never to an
   already changed copy, so errors do not compound across substitutions;
5. :meth:`SubstitutionMethod.record` -- swap the module in, drop the layer's stale
   encodings and record the change (``state.record_substitution``), so .sqz
   loading replays it through :meth:`SubstitutionMethod.rebuild` and later
   substitutions (of this method or another) still fit against the original.

Subclasses implement :meth:`build`, :meth:`init` and :meth:`rebuild_layer`;
they override :meth:`fit` or :meth:`finish` only for something really their own
(Fire fits through the BatchNorm after the layer and re-estimates statistics).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.method import ORDER_ARCHITECTURE, CompressionMethod
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.compression.substitution.calibration import calibration_images
from squeezestudio.core.compression.substitution.module_surgery import get_module, replace_module
from squeezestudio.core.compression.substitution.reconstruction import fit_to_original
from squeezestudio.core.errors import ArchitectureMismatchError, CodecError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


@dataclass
class Substitute:
    """What :meth:`SubstitutionMethod.build` returns for one layer.

    ``record`` is JSON-able and holds everything :meth:`SubstitutionMethod.rebuild_layer`
    needs (the base adds ``method`` and ``layer``); ``notes`` are log lines
    (warnings about the choice made).
    """

    module: nn.Module
    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)


class SubstitutionMethod(CompressionMethod):
    """Base of the methods that replace layers by new modules (build, init, fit, record)."""

    order = ORDER_ARCHITECTURE
    layer_types: tuple[type[nn.Module], ...] = (nn.Conv2d,)

    # -- what each method provides ------------------------------------------------
    def skip_reason(self, module: nn.Module, config: Any) -> Optional[str]:
        """Why this layer is left alone with this config (None: replace it). Default: ``applies_to``."""
        return None if self.applies_to(module) else f"{self.name} does not apply to a {type(module).__name__}"

    @abstractmethod
    def build(self, layer: str, module: nn.Module, config: Any) -> Substitute:
        """The uninitialised replacement of ``module`` and its record (do not change the model)."""

    @abstractmethod
    def init(self, new: nn.Module, old: nn.Module, config: Any) -> str:
        """Start ``new`` from ``old``'s weights (data-free); returns a short description for the log."""

    @abstractmethod
    def rebuild_layer(self, current: nn.Module, record: dict[str, Any]) -> nn.Module:
        """The uninitialised module ``record`` describes for the layer now ``current``.

        Raise :class:`ArchitectureMismatchError` when ``current`` is not the
        layer it was recorded for; a missing or malformed key (KeyError,
        TypeError, ValueError) becomes a :class:`CodecError` in :meth:`rebuild`.
        """

    def fit(self, state: CompressionState, layer: str, new: nn.Module, calibration: torch.Tensor,
            config: Any, progress: Optional[ProgressCallback] = None,
            cancel: Optional[CancelToken] = None) -> Optional[str]:
        """Fit ``new`` to the original model's output of ``layer``; a log fragment, or None if not fitted.

        Default: exactly ``config.reconstruct_steps`` Adam steps, a budget in steps so
        the result does not depend on the machine's speed (configs without the field
        are not fitted).
        """
        steps = int(getattr(config, "reconstruct_steps", 0) or 0)
        if steps <= 0:
            return None
        fit = fit_to_original(state, layer, new, calibration, steps=steps,
                              progress=progress, cancel=cancel)
        return f"reconstruction error {fit.before_error:.4g} -> {fit.after_error:.4g}"

    def finish(self, state: CompressionState, replaced: dict[str, Any], calibration: Optional[torch.Tensor],
               cancel: Optional[CancelToken] = None) -> None:
        """After every layer of one ``apply``: ``replaced`` maps the replaced layers to their configs."""

    # -- the template ------------------------------------------------------------------
    def record(self, state: CompressionState, layer: str, substitute: Substitute) -> None:
        """Swap the new module in and do the bookkeeping every substitution needs."""
        replace_module(state.module, layer, substitute.module)
        state.record_substitution(layer, {"method": self.name, "layer": layer, **substitute.record})

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        calibration = calibration_images(state.calibration)
        state.original_module()  # keep the model as it is now: every substitute is fitted to it
        total = max(1, len(layer_configs))
        replaced: dict[str, Any] = {}
        for i, (layer, raw) in enumerate(layer_configs.items()):
            check(cancel)
            report(progress, i / total, f"{self.name}: {layer}")
            config = self.config_for(layer, raw)
            old = get_module(state.module, layer)
            reason = self.skip_reason(old, config)
            if reason is not None:
                state.log.append(f"{self.name}: left {layer} alone: {reason}")
                continue
            substitute = self.build(layer, old, config)
            state.log.extend(f"{self.name}: {note}" for note in substitute.notes)
            weight = getattr(old, "weight", None)
            if isinstance(weight, torch.Tensor):
                substitute.module = substitute.module.to(weight.device, weight.dtype)
            parts = [self.init(substitute.module, old, config)]
            if calibration is not None:
                parts.append(self.fit(state, layer, substitute.module, calibration, config,
                                      progress=scaled(progress, i / total, (i + 1) / total), cancel=cancel))
            before = sum(p.numel() for p in old.parameters())
            after = sum(p.numel() for p in substitute.module.parameters())
            self.record(state, layer, substitute)
            replaced[layer] = config
            state.log.append(", ".join([f"{self.name}: {layer}: {before} -> {after} parameters"]
                                       + [p for p in parts if p]))
        self.finish(state, replaced, calibration, cancel)
        report(progress, 1.0, f"{self.name}: done")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Redo a recorded substitution with uninitialised weights (the .sqz loads them)."""
        try:
            layer = str(modification["layer"])
            current = get_module(module, layer)
            new = self.rebuild_layer(current, modification)
        except ArchitectureMismatchError:
            raise
        except (KeyError, TypeError, ValueError):
            raise CodecError(f"a {self.label} substitution recorded in the file is incomplete") from None
        weight = getattr(current, "weight", None)
        if isinstance(weight, torch.Tensor):
            new = new.to(weight.device, weight.dtype)
        replace_module(module, layer, new)
        return module
