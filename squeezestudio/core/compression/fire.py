"""The "fire" method: replace kxk convolutions by Fire modules (or by 1x1 convolutions).

SqueezeNet's strategies 1 and 2 as a compression method. ``strategy="fire"``
puts a :class:`~squeezestudio.core.compression.substitution.fire_module.FireConv`
(squeeze 1x1 -> ReLU -> expand 1x1 | expand kxk) in place of each selected
convolution; ``strategy="1x1"`` replaces it by a 1x1 convolution. Only the
convolution is replaced: the BatchNorm/ReLU after it stay where they are.

Initialisation: ``random`` (PyTorch's default), ``svd`` (data-free low-rank
start, :mod:`~squeezestudio.core.compression.substitution.svd_init`) or
``svd+reconstruct``, the default (then fit each new module to the original
layer's outputs on calibration images,
:mod:`~squeezestudio.core.compression.substitution.reconstruction`). Calibration images
come from ``state.calibration`` (an NCHW tensor or an ImageDataset, set by
``compress(..., calibration=...)``); without them ``svd+reconstruct`` falls
back to ``svd`` and says so in ``state.log``. The data-free start alone does
not survive several stacked substitutions (see docs/fire_substitution.md).

Reconstruction is sequential: layer i is fitted on the inputs the model
*with layers 1..i-1 already replaced* produces, to the outputs the original
produced, so each layer also corrects the drift of those before it instead of
letting errors compound. It fits through the BatchNorm/activation that follow
the convolution (``fit_through``), and can afterwards re-estimate the running
statistics of the BatchNorms downstream (``recalibrate_bn``).

Every substitution is recorded with ``state.record_modification`` so loading
a .sqz replays it through :meth:`FireMethod.rebuild` before the weights load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.substitution.calibration import calibration_images, capture_layer_io
from squeezestudio.core.compression.substitution.fire_module import (
    ConvGeometry, bypass_allowed, fire_channels, make_fire, make_pointwise, unsupported_reason)
from squeezestudio.core.compression.substitution.batchnorm_recalibration import batchnorms_after, recalibrate_batchnorm
from squeezestudio.core.compression.substitution.reconstruction import (
    ReconstructionResult, TailFit, following_tail, reconstruct_layer)
from squeezestudio.core.compression.substitution.module_surgery import get_module, replace_module
from squeezestudio.core.compression.substitution.svd_init import init_fire_from_conv, init_pointwise_from_conv
from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.method import ORDER_ARCHITECTURE, CompressionMethod
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import ArchitectureMismatchError, CodecError
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled

INIT_CHOICES = ("random", "svd", "svd+reconstruct")
STRATEGY_CHOICES = ("fire", "1x1")


@dataclass(frozen=True)
class FireConfig:
    """Knobs of one substitution.

    ``squeeze_ratio`` defaults to 0.25 rather than SqueezeNet's 0.125: here one
    trained convolution is replaced in place, not a network trained from
    scratch, and with the exact ReLU pairing (see ``svd_init``) the low-rank
    start keeps ``s/2`` components, so 0.125 throws away too much of the
    kernel before any fine-tuning. SR=0.25, pct3x3=0.5 is still a 6x smaller
    layer when in == out (``(0.25 + 0.125 + 0.125*9) / 9``).
    """

    strategy: str = param("fire", choices=STRATEGY_CHOICES,
                          help="fire: squeeze/expand block; 1x1: a 1x1 convolution (SqueezeNet strategy 1)")
    squeeze_ratio: float = param(0.25, minimum=0.01, maximum=1.0,
                                 help="squeeze channels as a share of the output channels (SqueezeNet's SR)")
    pct3x3: float = param(0.5, minimum=0.0, maximum=1.0,
                          help="share of output channels computed by the kxk expand (the rest by 1x1)")
    bypass: bool = param(False, help="add the input to the output where shapes allow (ignored elsewhere)")
    squeeze_relu: bool = param(True, help="ReLU after the squeeze, as in SqueezeNet")
    init: str = param("svd+reconstruct", choices=INIT_CHOICES,
                      help="random, a low-rank start from the original kernel, or that plus layer-wise "
                           "fitting on calibration images (plain svd when there are none)")
    reconstruct_steps: int = param(200, minimum=1, maximum=100_000,
                                   help="most Adam steps of layer-wise reconstruction per layer")
    reconstruct_lr: float = param(3e-3, minimum=1e-6, maximum=1.0,
                                  help="Adam learning rate of layer-wise reconstruction")
    fit_through: bool = param(True, help="fit the output after the BatchNorm/activation that follow the "
                                         "convolution rather than its raw output")
    recalibrate_bn: bool = param(False, help="after substituting, re-estimate the running statistics of "
                                             "later BatchNorm layers on the calibration images")


@dataclass(frozen=True)
class FireOutcome:
    """What happened to one layer (``skipped`` holds the reason when nothing did)."""

    layer: str
    skipped: Optional[str] = None
    modification: Optional[dict[str, Any]] = None
    parameters_before: int = 0
    parameters_after: int = 0
    kept_energy: Optional[float] = None
    reconstruction: Optional[ReconstructionResult] = None


def skip_reason(module: nn.Module) -> Optional[str]:
    """Why the fire method leaves ``module`` alone (None when it can replace it)."""
    reason = unsupported_reason(module)
    if reason is None and tuple(module.kernel_size) == (1, 1):  # type: ignore[union-attr]
        reason = "it is already a 1x1 convolution"
    return reason


def select_largest_convs(module: nn.Module, n: int) -> list[str]:
    """Names of the ``n`` replaceable kxk convolutions with most parameters, in network order.

    This is ``--fire-auto N``: the biggest layers are where a Fire module saves most.
    """
    candidates = [(name, m.weight.numel(), i) for i, (name, m) in enumerate(module.named_modules())
                  if isinstance(m, nn.Conv2d) and skip_reason(m) is None]
    largest = sorted(candidates, key=lambda c: (-c[1], c[2]))[:max(0, n)]
    return [name for name, _, _ in sorted(largest, key=lambda c: c[2])]


def build_replacement(geometry: ConvGeometry, record: dict[str, Any]) -> nn.Module:
    """The uninitialised module a modification record describes."""
    if record["strategy"] == "1x1":
        return make_pointwise(geometry)
    return make_fire(geometry, int(record["squeeze"]), int(record["e1"]), int(record["e3"]),
                     bypass=bool(record["bypass"]), squeeze_relu=bool(record["squeeze_relu"]),
                     expand_relu=bool(record.get("expand_relu", False)))


def plan_modification(name: str, geometry: ConvGeometry, config: FireConfig) -> dict[str, Any]:
    """The JSON record of replacing ``name`` with ``config`` (bypass already checked)."""
    record: dict[str, Any] = {"method": "fire", "layer": name, "strategy": config.strategy,
                              "init": config.init, "conv": geometry.to_dict()}
    if config.strategy == "fire":
        squeeze, e1, e3 = fire_channels(geometry.out_channels, config.squeeze_ratio, config.pct3x3)
        record.update(squeeze=squeeze, e1=e1, e3=e3, squeeze_ratio=config.squeeze_ratio,
                      pct3x3=config.pct3x3, squeeze_relu=config.squeeze_relu, expand_relu=False,
                      bypass=bool(config.bypass and bypass_allowed(geometry)))
    return record


def substitute_conv(model: nn.Module, name: str, config: FireConfig, *,
                    calibration: Optional[torch.Tensor] = None,
                    reference: Optional[nn.Module] = None, log: Optional[list[str]] = None,
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> FireOutcome:
    """Replace, initialise and (optionally) reconstruct one convolution of ``model``.

    ``reference`` is the unmodified model whose layer outputs the
    reconstruction targets; inputs come from ``model`` itself, so each new
    layer also learns to undo the drift of the layers replaced before it.
    """
    lines = log if log is not None else []
    conv = get_module(model, name)
    reason = skip_reason(conv)
    if reason is not None:
        lines.append(f"fire: left {name} alone: {reason}")
        return FireOutcome(layer=name, skipped=reason)
    assert isinstance(conv, nn.Conv2d)
    geometry = ConvGeometry.from_conv(conv)
    record = plan_modification(name, geometry, config)
    if config.strategy == "fire" and config.bypass and not record["bypass"]:
        lines.append(f"fire: warning: no bypass on {name}: it needs equal in/out channels, "
                     "stride 1 and 'same' padding with an odd kernel")
    new = build_replacement(geometry, record).to(conv.weight.device, conv.weight.dtype)
    kept = None
    fitted: Optional[nn.Module] = None
    if config.init != "random":
        if config.strategy == "fire":
            kept = init_fire_from_conv(new, conv).kept_energy  # type: ignore[arg-type]
        else:
            init_pointwise_from_conv(new, conv)
    result = None
    if config.init == "svd+reconstruct":
        if calibration is None or reference is None:
            lines.append(f"fire: {name}: no calibration images, so 'svd+reconstruct' is plain 'svd'")
        else:
            tail = following_tail(reference, name) if config.fit_through else []
            inputs = capture_layer_io(model, name, calibration, want_outputs=False, cancel=cancel).inputs
            targets = capture_layer_io(reference, tail[-1] if tail else name, calibration,
                                       want_inputs=False, cancel=cancel).outputs
            assert inputs is not None and targets is not None
            n = min(inputs.shape[0], targets.shape[0])
            fitted = TailFit(new, [get_module(model, t) for t in tail]) if tail else new
            result = reconstruct_layer(fitted, inputs[:n], targets[:n], steps=config.reconstruct_steps,
                                       lr=config.reconstruct_lr,
                                       progress=progress, cancel=cancel)
    replace_module(model, name, new)
    before = sum(p.numel() for p in conv.parameters())
    after = sum(p.numel() for p in new.parameters())
    text = f"fire: {name} -> {config.strategy} ({before} -> {after} parameters, init {config.init}"
    if kept is not None:
        text += f", low-rank start keeps {kept:.1%} of the kernel energy"
    if result is not None:
        where = " after BatchNorm/activation" if isinstance(fitted, TailFit) else ""
        text += f", reconstruction error{where} {result.before_error:.4g} -> {result.after_error:.4g}"
    lines.append(text + ")")
    return FireOutcome(layer=name, modification=record, parameters_before=before,
                       parameters_after=after, kept_energy=kept, reconstruction=result)


class FireMethod(CompressionMethod):
    """Fire-module substitution (SqueezeNet strategies 1 and 2, ResSquVGG bypass)."""

    name = "fire"
    label = "Fire module"
    description = ("Replace a kxk convolution by a squeeze/expand Fire module (or a 1x1 "
                   "convolution), started from a low-rank factorisation of its kernel.")
    order = ORDER_ARCHITECTURE
    config_class = FireConfig
    layer_types = (nn.Conv2d,)
    paper = "Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters (2016)"

    def applies_to(self, module: nn.Module) -> bool:
        return isinstance(module, nn.Conv2d) and skip_reason(module) is None

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        configs = {name: self.config_for(name, c) for name, c in layer_configs.items()}
        calibration = calibration_images(state.calibration)
        reference = None
        if calibration is not None and any(c.init == "svd+reconstruct" for c in configs.values()):
            reference = state.original_module()
        total = max(1, len(configs))
        replaced: list[str] = []
        for i, (name, config) in enumerate(configs.items()):
            check(cancel)
            report(progress, i / total, f"fire: {name}")
            outcome = substitute_conv(state.module, name, config, calibration=calibration,
                                      reference=reference, log=state.log,
                                      progress=scaled(progress, i / total, (i + 1) / total),
                                      cancel=cancel)
            if outcome.modification is not None:
                state.record_substitution(name, outcome.modification)
                replaced.append(name)
        wants_recalibration = any(configs[n].recalibrate_bn for n in replaced)
        if wants_recalibration and calibration is None:
            state.log.append("fire: no calibration images, so BatchNorm statistics were not re-estimated")
        elif wants_recalibration:
            count = recalibrate_batchnorm(state.module, calibration, batchnorms_after(state.module, replaced),
                                          cancel=cancel)
            state.log.append(f"fire: re-estimated the statistics of {count} BatchNorm layer(s) "
                             f"on {calibration.shape[0]} calibration images")
        report(progress, 1.0, "fire: done")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Redo a recorded substitution with uninitialised weights (the .sqz loads them)."""
        try:
            name = str(modification["layer"])
            geometry = ConvGeometry.from_dict(modification["conv"])
            new = build_replacement(geometry, modification)
        except (KeyError, TypeError, ValueError):
            raise CodecError("a Fire substitution recorded in the file is incomplete") from None
        current = get_module(module, name)
        if not isinstance(current, nn.Conv2d) or ConvGeometry.from_conv(current) != geometry:
            raise ArchitectureMismatchError(
                f"layer {name!r} is not the convolution the Fire substitution was recorded for")
        replace_module(module, name, new.to(current.weight.device, current.weight.dtype))
        return module
