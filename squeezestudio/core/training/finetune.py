"""Fine-tuning a compressed model without losing its compression.

Deep Compression retrains after each stage: pruned weights stay at zero
(masks held), clustered layers keep their symbols and only their shared
centroids move ("trained quantization"), quantized layers stay on their grid.
:func:`finetune_compressed` finds out which method compressed which layer
(from the recipe stored in the :class:`CompressedModel`, or from the
encodings themselves when there is none), trains with the methods' own
:class:`FinetuneHooks`, then refreshes every :class:`WeightEncoding` from
the trained weights keeping its structure (same mask, same symbols, same bit
width) and writes the decoded weights back through
:meth:`CompressionState.set_encoding`, so the model equals its .sqz file bit
for bit and the file keeps its size (up to entropy-coding changes).

Cancelling keeps the best weights so far (the training loop keeps the best
epoch); calling again with the returned model resumes from those weights.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Optional, Union

import numpy as np
from torch import nn

from squeezestudio.core.compression.clustering import ClusterConfig
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.method import ORDER_PRUNE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.pruning import PruneConfig
from squeezestudio.core.compression.quantization import QuantizeConfig, quantize_weight
from squeezestudio.core.compression.recipe import recipe_from_dict, resolve
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.state import CompressionState, weight_key
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import RecipeError, SqueezeStudioError
from squeezestudio.core.progress import CancelToken, ProgressCallback, report, scaled
from squeezestudio.core.devices import resolve_device
from squeezestudio.core.training.loop import TrainConfig, TrainResult, device_of, train_classifier

Step = tuple[CompressionMethod, dict[str, Any]]

# Which encodings each built-in method leaves behind (a recipe entry for a layer
# whose encoding is not one of these did not compress it, e.g. a skipped layer).
_KINDS_OF = {"prune": None, "cluster": ("codebook",), "quantize": ("affine", "codebook", "float16")}


def _layer_of(key: str) -> str:
    return key[: -len(".weight")] if key.endswith(".weight") else ""


def _copy_state(source: Union[CompressedModel, CompressionState]) -> CompressionState:
    """A private state (module clone + copied encodings): the caller's model is never changed."""
    encodings = {k: copy.deepcopy(v) for k, v in source.encodings.items()}
    if isinstance(source, CompressionState):
        log = list(source.log)
    else:
        earlier = source.provenance.get("log", [])
        log = [str(line) for line in earlier] if isinstance(earlier, list) else []
    return CompressionState(handle=source.handle.clone(), encodings=encodings, log=log)


def _recipe_steps(state: CompressionState, recipe: dict[str, Any], registry: MethodRegistry) -> list[Step]:
    """(method, {layer: config}) for the recipe's weight methods, limited to layers they compressed."""
    if not recipe:
        return []
    architecture = {m.name for m in registry.methods() if m.order < ORDER_PRUNE}
    plan = resolve(recipe_from_dict(recipe), state, registry, skip_methods=architecture, strict_names=False)
    steps: list[Step] = []
    for method, configs in plan:
        if not method.changes_weights:  # e.g. activation quantization: nothing in the weights to keep
            continue
        kinds = _KINDS_OF.get(method.name, "any")
        kept = {}
        for layer, cfg in configs.items():
            enc = state.encodings.get(weight_key(layer))
            if enc is None:
                continue
            if method.name == "prune" and enc.mask is None:
                continue
            if kinds not in (None, "any") and enc.kind not in kinds:
                continue
            kept[layer] = cfg
        if kept:
            steps.append((method, kept))
    return steps


def _inferred_quantize(enc: WeightEncoding) -> Optional[QuantizeConfig]:
    """The quantization config an encoding must have come from (None if it cannot tell)."""
    if enc.kind == "float16":
        return QuantizeConfig(scheme="float16")
    if enc.kind == "affine" and enc.scale is not None and enc.zero_point is not None:
        per_channel = np.asarray(enc.scale).size > 1
        symmetric = enc.bits >= 2 and bool(np.all(np.asarray(enc.zero_point) == 2 ** (enc.bits - 1)))
        return QuantizeConfig(scheme="uniform", bits=int(enc.bits), mode="symmetric" if symmetric else "asymmetric",
                              granularity="channel" if per_channel else "tensor",
                              entropy_coded=enc.entropy_coded)
    if enc.kind == "codebook" and enc.codebook is not None and np.ndim(enc.codebook) == 2:
        scheme = {2: "binary", 3: "ternary"}.get(int(np.shape(enc.codebook)[1]))
        if scheme is not None:
            return QuantizeConfig(scheme=scheme, granularity="channel", entropy_coded=enc.entropy_coded)
    return None


def _inferred_steps(state: CompressionState, covered: dict[str, set[str]],
                    registry: MethodRegistry) -> tuple[list[Step], list[str]]:
    """Steps for encoded layers the recipe did not explain, and the layers that must stay frozen."""
    found: dict[str, dict[str, Any]] = {"prune": {}, "cluster": {}, "quantize": {}}
    frozen: list[str] = []
    for key, enc in state.encodings.items():
        layer = _layer_of(key)
        done = covered.get(layer, set())
        if enc.mask is not None and "prune" not in done:
            found["prune"][layer] = PruneConfig()
        if enc.kind == "float32" or done - {"prune"}:
            continue
        quant = _inferred_quantize(enc)
        if quant is not None:
            found["quantize"][layer] = quant
        elif enc.kind == "codebook" and np.ndim(enc.codebook) == 1:
            found["cluster"][layer] = ClusterConfig(bits=max(1, min(8, int(enc.bits))),
                                                    entropy_coded=enc.entropy_coded)
        else:
            frozen.append(layer)
    steps = [(registry.get(name), configs) for name, configs in found.items()
             if configs and name in registry]
    return steps, frozen


def finetune_plan(state: CompressionState, recipe: Optional[dict[str, Any]] = None,
                  *, registry: MethodRegistry) -> tuple[list[Step], list[str]]:
    """Which method keeps which layer's compression during fine-tuning, and which layers to freeze.

    The recipe gives the methods and their exact configs; encodings it does
    not explain (a file saved without a recipe, a state built by hand) get the
    built-in method that produces that kind of encoding. Encodings no method
    can keep while training (an unknown plugin's custom payload) are frozen.
    """
    try:
        steps = _recipe_steps(state, recipe or {}, registry)
    except SqueezeStudioError as exc:  # e.g. a plugin named in the recipe is not installed
        state.log.append(f"finetune: recipe not usable ({exc}); inferring methods from the encodings")
        steps = []
    covered: dict[str, set[str]] = {}
    for method, configs in steps:
        for layer in configs:
            covered.setdefault(layer, set()).add(method.name)
    extra, frozen = _inferred_steps(state, covered, registry)
    ordered = sorted(steps + extra, key=lambda s: s[0].order)
    return ordered, frozen


def refresh_encoding(enc: WeightEncoding, weight: np.ndarray, config: Any = None) -> WeightEncoding:
    """An encoding of ``weight`` with ``enc``'s structure: same mask, symbols or grid, and bit width.

    - float32/float16: the kept values of ``weight``;
    - codebook: same symbols, each centroid the mean of the weights that use it
      (exact when fine-tuning kept the sharing); with a binary/ternary
      :class:`QuantizeConfig` the layer is re-quantized instead;
    - affine: re-quantized with ``config`` (re-derived scales) or, without
      one, on the same scale and zero point;
    - custom: unchanged (the layer was frozen).
    """
    if enc.kind == "custom" or np.array_equal(enc.decode(), weight):
        return enc
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    kept = flat if enc.mask is None else flat[enc.mask]
    if enc.kind == "float32":
        return replace(enc, values=kept.copy())
    if enc.kind == "float16":
        return replace(enc, values=kept.astype(np.float16))
    if isinstance(config, QuantizeConfig) and enc.kind in ("affine", "codebook"):
        return quantize_weight(np.asarray(weight, dtype=np.float32), enc.mask, config)
    if enc.kind == "codebook":
        assert enc.symbols is not None and enc.codebook is not None
        cb = np.asarray(enc.codebook, dtype=np.float64)
        groups = enc.symbols.astype(np.int64)
        if cb.ndim == 2:
            groups = enc.channel_of_kept() * cb.shape[1] + groups
        sums = np.bincount(groups, weights=kept.astype(np.float64), minlength=cb.size)
        counts = np.bincount(groups, minlength=cb.size)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), cb.reshape(-1)).reshape(cb.shape)
        return replace(enc, codebook=new.astype(np.float32))
    if enc.kind == "affine":
        assert enc.scale is not None and enc.zero_point is not None
        scale = np.asarray(enc.scale, dtype=np.float32)
        zero = np.asarray(enc.zero_point).astype(np.float32)
        group = np.zeros(kept.size, dtype=np.int64) if scale.size == 1 else enc.channel_of_kept()
        q = np.clip(np.rint(kept / scale[group]) + zero[group], 0, 2 ** int(enc.bits) - 1)
        return replace(enc, symbols=q.astype(enc.symbols.dtype if enc.symbols is not None else np.uint16))
    return enc


def _refresh_all(state: CompressionState, steps: list[Step], registry: MethodRegistry) -> None:
    configs: dict[str, Any] = {}
    for method, layer_configs in steps:
        for layer, cfg in layer_configs.items():
            if isinstance(cfg, QuantizeConfig) or layer not in configs:
                configs[layer] = cfg
    for key, enc in list(state.encodings.items()):
        layer = _layer_of(key)
        weight = state.layer(layer).weight.detach().cpu().numpy()
        new = refresh_encoding(enc, weight, configs.get(layer))
        state.set_encoding(layer, new, registry.decode_custom if new.kind == "custom" else None)


def finetune_compressed(cm_or_state: Union[CompressedModel, CompressionState], train: ImageDataset,
                        val: Optional[ImageDataset], config: TrainConfig, *,
                        registry: MethodRegistry, teacher: Optional[nn.Module] = None,
                        progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None) -> tuple[CompressedModel, TrainResult]:
    """Fine-tune a compressed model keeping its compression; returns a new model and the history.

    The input is not changed. The returned model's weights equal the
    decoding of its encodings (so its .sqz decodes to it bit for bit), masks
    and symbol assignments are those of the input, and each encoding keeps
    its bit width. With ``config.distill_temperature`` set, ``teacher`` (e.g.
    the uncompressed original) is distilled into the model.
    """
    if config.distill_temperature is not None and teacher is None:
        raise RecipeError("distillation (a distill temperature) needs a teacher model; pass the original model "
                          "as the teacher or unset the temperature")
    state = _copy_state(cm_or_state)
    recipe = cm_or_state.recipe if isinstance(cm_or_state, CompressedModel) else {}
    report(progress, 0.0, "preparing fine-tuning")
    steps, frozen = finetune_plan(state, recipe, registry=registry)
    if config.optimizer == "adam" and any(isinstance(c, ClusterConfig) and c.centroid_update == "sum"
                                          for _, configs in steps for c in configs.values()):
        # Adam's steps are about lr each whatever the gradient, so their sum over a big cluster overshoots
        state.log.append("finetune: centroid_update=sum with Adam can move centroids far; "
                         "use optimizer=sgd (as Deep Compression) or centroid_update=mean")
    device = resolve_device()  # --device / the GUI's setting; hooks take their tensors from the weights' device
    state.module.to(device)  # the state is this call's own copy
    if teacher is not None and device_of(teacher) != device:
        teacher = copy.deepcopy(teacher).to(device)  # never move the caller's model: other jobs may be using it
    hooks: list[FinetuneHooks] = []
    for method, layer_configs in steps:
        h = method.finetune_hooks(state, layer_configs)
        if h is not None:
            hooks.append(h)
    frozen_params = [state.layer(layer).weight for layer in frozen]
    saved = [p.requires_grad for p in frozen_params]
    for p in frozen_params:
        p.requires_grad_(False)
    try:
        result = train_classifier(state.module, train, val, config, hooks=hooks, teacher=teacher,
                                  progress=scaled(progress, 0.0, 0.98), cancel=cancel)
    finally:
        for p, flag in zip(frozen_params, saved):
            p.requires_grad_(flag)
        state.module.to("cpu")  # encodings and files are made on the CPU
    _refresh_all(state, steps, registry)
    state.log.append(f"finetune: {len(result.history)} epoch(s), best val top-1 {result.best_val_top1}"
                     + (" (cancelled)" if result.cancelled else ""))
    report(progress, 1.0, "fine-tuning cancelled" if result.cancelled else "fine-tuning done")
    return _package(cm_or_state, state, result), result


def _package(source: Union[CompressedModel, CompressionState], state: CompressionState,
             result: TrainResult) -> CompressedModel:
    record = {"epochs": len(result.history), "best_val_top1": result.best_val_top1,
              "best_epoch": result.best_epoch, "cancelled": result.cancelled}
    if isinstance(source, CompressedModel):
        provenance = copy.deepcopy(source.provenance)
        recipe, metrics = copy.deepcopy(source.recipe), {}
    else:
        provenance, recipe, metrics = {}, {}, {}
    provenance.setdefault("finetune", []).append(record)
    provenance["log"] = list(state.log)
    return CompressedModel(handle=state.handle, encodings=dict(state.encodings), recipe=recipe,
                           metrics=metrics, provenance=provenance)
