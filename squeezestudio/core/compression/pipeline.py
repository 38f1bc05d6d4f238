"""Apply a recipe to a model: the one entry point the CLI, GUI and sweeps call.

``compress`` works on a private copy of the user's model (the handle passed in
is never changed), applies the recipe's methods in their order (architecture
changes, then pruning, then sharing/quantization) with progress and
cancellation, and returns a :class:`CompressedModel` whose weights equal the
decoding of its encodings. Sizes are measured by the codec
(``codec.size_report``) and files written by ``codec.save_sqz``; entropy
coding is only a flag in the encodings here.

After an architecture change (e.g. Fire substitution) the layer list is
different, so the rest of the recipe is resolved again against the new model:
globals and globs then also reach the new layers, and patterns naming layers
that were replaced simply match nothing.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

import squeezestudio
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.method import ORDER_PRUNE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.recipe import Recipe, recipe_to_dict, resolve, validate, weighted_layers
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled

AppliedStep = tuple[CompressionMethod, dict[str, Any]]


def _architecture_steps(state: CompressionState, recipe: Recipe,
                        registry: MethodRegistry) -> list[AppliedStep]:
    """The recipe's ``architecture`` entries as (method, {layer: config}), checked."""
    steps: list[AppliedStep] = []
    for i, entry in enumerate(recipe.architecture):
        method = registry.get(entry["method"])
        layer = entry["layer"]
        where = f"architecture entry {i + 1} ({method.name} on {layer})"
        modules = weighted_layers(state.module)
        if layer not in modules:
            raise RecipeError(f"{where}: the model has no layer {layer!r} with weights")
        if not method.applies_to(modules[layer]):
            raise RecipeError(f"{where}: {method.name} does not apply to a {type(modules[layer]).__name__}")
        options = {k: v for k, v in entry.items() if k not in ("method", "layer")}
        steps.append((method, {layer: make_config(method.config_class, options, where=where)}))
    return steps


def apply_recipe_to_state(state: CompressionState, recipe: Recipe, *,
                          registry: MethodRegistry,
                          progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelToken] = None) -> list[AppliedStep]:
    """Apply ``recipe`` to ``state`` in place; returns what was applied, in order.

    The returned steps are what :func:`collect_finetune_hooks` needs. The whole
    recipe is validated before any method runs, so a typo fails in
    milliseconds rather than after a slow step.
    """
    if recipe.stages:  # stage after stage, each on what the previous one left
        validate(recipe, list(weighted_layers(state.module)), registry)
        applied: list[AppliedStep] = []
        count = len(recipe.stages)
        for i, stage in enumerate(recipe.stages):
            applied += apply_recipe_to_state(state, stage, registry=registry, cancel=cancel,
                                             progress=scaled(progress, i / count, (i + 1) / count))
        return applied
    arch_steps = _architecture_steps(state, recipe, registry)
    plan = resolve(recipe, state, registry)
    total = max(1, len(arch_steps) + len(plan))
    applied: list[AppliedStep] = []

    def run(method: CompressionMethod, configs: dict[str, Any]) -> None:
        check(cancel)
        start = len(applied) / total
        report(progress, start, f"{method.label}: {len(configs)} layer(s)")
        method.apply(state, configs, scaled(progress, start, (len(applied) + 1) / total), cancel)
        applied.append((method, configs))

    for method, configs in arch_steps:
        run(method, configs)
    done: set[str] = set()
    if arch_steps:
        plan = resolve(recipe, state, registry, strict_names=False)
    while plan:
        method, configs = plan[0]
        run(method, configs)
        done.add(method.name)
        if method.order < ORDER_PRUNE:  # the model changed: resolve the rest against it
            plan = resolve(recipe, state, registry, skip_methods=done, strict_names=False)
        else:
            plan = plan[1:]
    report(progress, 1.0, "compression done")
    return applied


def needs_calibration(recipe: Recipe, registry: MethodRegistry) -> bool:
    """True when applying ``recipe`` needs calibration images.

    That is when a stage changes the architecture (substitutes are fitted on
    images) or enables a method that measures something on them
    (``needs_calibration``, e.g. activation ranges). Methods the registry does
    not know are left to the recipe's own validation.
    """
    for stage in recipe.stage_list():
        if stage.architecture:
            return True
        named = set(stage.methods) | {m for override in stage.layers.values()
                                      for m, opts in override.items() if opts is not None}
        if any(name in registry and registry.get(name).needs_calibration for name in named):
            return True
    return False


def collect_finetune_hooks(state: CompressionState, applied: list[AppliedStep]) -> list[FinetuneHooks]:
    """The fine-tuning hooks of every applied method, in application order."""
    hooks = []
    for method, configs in applied:
        h = method.finetune_hooks(state, configs)
        if h is not None:
            hooks.append(h)
    return hooks


def provenance_of(handle: ModelHandle) -> dict[str, Any]:
    """Where a compressed model came from, for the file and the experiment log.

    No time stamp: the same command must write byte-identical files (the file's
    own modification time says when).
    """
    return {
        "source": handle.name,
        "source_format": handle.source_format,
        # The file name only: a shared .sqz should not reveal the author's folders.
        "source_file": handle.source_path.name if handle.source_path is not None else None,
        "squeezestudio_version": squeezestudio.__version__,
    }


def compressed_model_from_state(state: CompressionState, recipe: Recipe,
                                source: ModelHandle) -> CompressedModel:
    """Package a compressed state (e.g. after fine-tuning) as a :class:`CompressedModel`."""
    provenance = provenance_of(source)
    provenance["log"] = list(state.log)
    return CompressedModel(handle=state.handle, encodings=dict(state.encodings),
                           recipe=recipe_to_dict(recipe), provenance=provenance)


def compress(handle: ModelHandle, recipe: Recipe, *, registry: MethodRegistry,
             calibration: Optional[torch.Tensor] = None,
             progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None) -> CompressedModel:
    """Compress a copy of ``handle``'s model with ``recipe`` (the original is untouched).

    ``calibration`` (preprocessed images, N x C x H x W) lets substitution
    methods such as Fire reconstruct each new layer's output on real inputs.
    """
    state = CompressionState.from_handle(handle, calibration=calibration)
    apply_recipe_to_state(state, recipe, registry=registry, progress=progress, cancel=cancel)
    return compressed_model_from_state(state, recipe, handle)
