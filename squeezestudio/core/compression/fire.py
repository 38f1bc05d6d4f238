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

The per-layer steps (skip, build, start, fit, record) are the
:class:`~squeezestudio.core.compression.substitution.substitution_method.SubstitutionMethod`
template; this module supplies Fire's parts, so loading a .sqz replays each
substitution through :meth:`FireMethod.rebuild_layer` before the weights load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.compression.substitution.batchnorm_recalibration import batchnorms_after, recalibrate_batchnorm
from squeezestudio.core.compression.substitution.calibration import capture_layer_io
from squeezestudio.core.compression.substitution.fire_module import (
    ConvGeometry, bypass_allowed, fire_channels, make_fire, make_pointwise, unsupported_reason)
from squeezestudio.core.compression.substitution.module_surgery import get_module
from squeezestudio.core.compression.substitution.reconstruction import TailFit, following_tail, reconstruct_layer
from squeezestudio.core.compression.substitution.substitution_method import Substitute, SubstitutionMethod
from squeezestudio.core.compression.substitution.svd_init import init_fire_from_conv, init_pointwise_from_conv
from squeezestudio.core.errors import ArchitectureMismatchError
from squeezestudio.core.progress import CancelToken, ProgressCallback

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


class FireMethod(SubstitutionMethod):
    """Fire-module substitution (SqueezeNet strategies 1 and 2, ResSquVGG bypass)."""

    name = "fire"
    label = "Fire module"
    description = ("Replace a kxk convolution by a squeeze/expand Fire module (or a 1x1 "
                   "convolution), started from a low-rank factorisation of its kernel.")
    config_class = FireConfig
    layer_types = (nn.Conv2d,)
    paper = "Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters (2016)"

    def applies_to(self, module: nn.Module) -> bool:
        return isinstance(module, nn.Conv2d) and skip_reason(module) is None

    def skip_reason(self, module: nn.Module, config: Any) -> Optional[str]:
        return skip_reason(module)

    def build(self, layer: str, module: nn.Module, config: FireConfig) -> Substitute:
        assert isinstance(module, nn.Conv2d)
        geometry = ConvGeometry.from_conv(module)
        record = plan_modification(layer, geometry, config)
        notes = []
        if config.strategy == "fire" and config.bypass and not record["bypass"]:
            notes.append(f"warning: no bypass on {layer}: it needs equal in/out channels, "
                         "stride 1 and 'same' padding with an odd kernel")
        return Substitute(build_replacement(geometry, record), record, notes)

    def init(self, new: nn.Module, old: nn.Module, config: FireConfig) -> str:
        text = f"{config.strategy}, init {config.init}"
        if config.init == "random":
            return text
        if config.strategy == "fire":
            kept = init_fire_from_conv(new, old).kept_energy  # type: ignore[arg-type]
            return text + f", low-rank start keeps {kept:.1%} of the kernel energy"
        init_pointwise_from_conv(new, old)  # type: ignore[arg-type]
        return text

    def fit(self, state: CompressionState, layer: str, new: nn.Module, calibration: torch.Tensor,
            config: FireConfig, progress: Optional[ProgressCallback] = None,
            cancel: Optional[CancelToken] = None) -> Optional[str]:
        """Sequential reconstruction, through the BatchNorm/activation after the layer when asked.

        Inputs come from the current model (earlier layers already replaced),
        targets from the original model, so each layer corrects the drift of
        those before it.
        """
        if config.init != "svd+reconstruct":
            return None
        reference = state.original_module()
        tail = following_tail(reference, layer) if config.fit_through else []
        inputs = capture_layer_io(state.module, layer, calibration, want_outputs=False, cancel=cancel).inputs
        targets = capture_layer_io(reference, tail[-1] if tail else layer, calibration,
                                   want_inputs=False, cancel=cancel).outputs
        assert inputs is not None and targets is not None
        n = min(inputs.shape[0], targets.shape[0])
        fitted = TailFit(new, [get_module(state.module, t) for t in tail]) if tail else new
        result = reconstruct_layer(fitted, inputs[:n], targets[:n], steps=config.reconstruct_steps,
                                   lr=config.reconstruct_lr,
                                   progress=progress, cancel=cancel)
        where = " after BatchNorm/activation" if tail else ""
        return f"reconstruction error{where} {result.before_error:.4g} -> {result.after_error:.4g}"

    def finish(self, state: CompressionState, replaced: dict[str, Any], calibration: Optional[torch.Tensor],
               cancel: Optional[CancelToken] = None) -> None:
        """Say when 'svd+reconstruct' had no images; re-estimate BatchNorm statistics downstream if asked."""
        if calibration is None and any(c.init == "svd+reconstruct" for c in replaced.values()):
            state.log.append("fire: no calibration images, so 'svd+reconstruct' is plain 'svd'")
        if not any(c.recalibrate_bn for c in replaced.values()):
            return
        if calibration is None:
            state.log.append("fire: no calibration images, so BatchNorm statistics were not re-estimated")
            return
        count = recalibrate_batchnorm(state.module, calibration, batchnorms_after(state.module, list(replaced)),
                                      cancel=cancel)
        state.log.append(f"fire: re-estimated the statistics of {count} BatchNorm layer(s) "
                         f"on {calibration.shape[0]} calibration images")

    def rebuild_layer(self, current: nn.Module, record: dict[str, Any]) -> nn.Module:
        geometry = ConvGeometry.from_dict(record["conv"])
        new = build_replacement(geometry, record)
        if not isinstance(current, nn.Conv2d) or ConvGeometry.from_conv(current) != geometry:
            raise ArchitectureMismatchError(
                f"layer {record['layer']!r} is not the convolution the Fire substitution was recorded for")
        return new
