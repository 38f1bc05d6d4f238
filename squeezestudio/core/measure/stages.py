"""Measure a staged recipe stage by stage: Deep Compression's prune -> retrain -> cluster -> retrain.

Each stage is applied to the model the previous stage left (masks, shared
centroids, substitutions kept), retrained when its ``finetune`` section asks
for epochs, then encoded and evaluated, so every stage gets a row with its
exact .sqz size and its accuracy -- the paper's stage table, from one recipe.

Honest selection: the evaluation data is only *reported* on. When a stage's
``finetune`` section sets ``holdout`` (a fraction, e.g. 0.1), that share of
the TRAINING data is held out (a seeded draw) and the epoch kept is the best
on it; without ``holdout`` the last epoch is kept. The evaluation data never
chooses anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.pipeline import apply_recipe_to_state, compressed_model_from_state
from squeezestudio.core.compression.recipe import Recipe, flatten_stages, recipe_to_dict, validate, weighted_layers
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError, RecipeError
from squeezestudio.core.measure.evaluation import EvalResult, evaluate
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled
from squeezestudio.core.training.finetune import finetune_compressed
from squeezestudio.core.training.loop import TrainConfig, TrainResult, train_config_from_dict
from squeezestudio.core.training.retrain_defaults import RETRAIN_DEFAULTS

# What a ``finetune`` section's missing fields mean: the retraining defaults, not training from scratch.
RETRAIN_BASE = TrainConfig(epochs=0, lr=RETRAIN_DEFAULTS.lr, shift_augment=RETRAIN_DEFAULTS.shift_augment,
                           seed=RETRAIN_DEFAULTS.seed, distill_alpha=RETRAIN_DEFAULTS.distill_alpha)


@dataclass
class StageRecord:
    """One stage's outcome: what it did, the file size after it, its accuracy on the reported data."""

    name: str
    size_bytes: int
    evaluation: Optional[EvalResult]
    training: Optional[TrainResult] = None
    holdout_images: int = 0  # training images held out to pick the epoch (0: last epoch kept)


@dataclass
class StageRun:
    """The final compressed model of a staged recipe and one record per stage."""

    compressed: Any
    stages: list[StageRecord] = field(default_factory=list)
    training: Optional[TrainResult] = None  # the last stage's retraining


def stage_retraining(stage: Recipe) -> tuple[Optional[TrainConfig], float]:
    """A stage's retraining settings (None: no retraining) and its held-out fraction of the training data."""
    return retraining_from_section(stage.finetune)


def retraining_from_section(finetune: Any) -> tuple[Optional[TrainConfig], float]:
    """A ``finetune`` section read once: its settings (None: no retraining) and its ``holdout`` fraction.

    Missing fields take the retraining defaults; unknown or invalid ones are a :class:`RecipeError`.
    """
    section = dict(finetune or {})
    holdout = section.pop("holdout", 0.0)
    try:
        holdout = float(holdout or 0.0)
    except (TypeError, ValueError):
        raise RecipeError(f"finetune.holdout must be a fraction such as 0.1, not {holdout!r}") from None
    if not 0.0 <= holdout < 0.9:
        raise RecipeError(f"finetune.holdout must be at least 0 and below 0.9, not {holdout}")
    if not section:
        return None, holdout
    config = train_config_from_dict(section, RETRAIN_BASE)
    return (config if config.epochs > 0 else None), holdout


def split_holdout(train: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, Optional[ImageDataset]]:
    """(training part, held-out part) by a seeded permutation; no held-out part for fraction 0."""
    if fraction <= 0.0:
        return train, None
    count = int(round(len(train) * fraction))
    if count < 1 or count >= len(train):
        raise DataError(f"holding out {fraction:.0%} of {len(train)} training images leaves nothing to pick "
                        "an epoch on or to train on; use more training data or another holdout")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(seed)))
    return (train.subset(order[count:].sort().values, f"{train.name} (training part)"),
            train.subset(order[:count].sort().values, f"{train.name} (held out)"))


def check_stages(recipe: Recipe, handle: ModelHandle, train_data: Optional[ImageDataset] = None, *,
                 registry: MethodRegistry, need_data: bool = True) -> None:
    """Every stage's methods, options and retraining section, before any work starts.

    ``need_data=False`` checks the recipe alone (before the training data is loaded).
    """
    validate(recipe, list(weighted_layers(handle.module)), registry)
    for stage in recipe.stage_list():
        config, _ = stage_retraining(stage)
        if config is not None and train_data is None and need_data:
            raise DataError(f"{stage.name or 'the recipe'} retrains, which needs training data; open a training "
                            "set (digits uses its training split) or set its finetune epochs to 0")


def run_stages(handle: ModelHandle, recipe: Recipe, data: Optional[ImageDataset], *,
               registry: MethodRegistry, train_data: Optional[ImageDataset] = None, teacher: Optional[nn.Module] = None,
               reference: Any = None, batch_size: Optional[int] = None, calibration: Optional[torch.Tensor] = None,
               progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> StageRun:
    """Apply, retrain, encode and evaluate each stage in turn; the last model carries the whole recipe."""
    check_stages(recipe, handle, train_data, registry=registry)
    stages = recipe.stage_list()
    state = CompressionState.from_handle(handle, calibration=calibration)
    run = StageRun(compressed=None)
    for i, stage in enumerate(stages):
        part = scaled(progress, i / len(stages), (i + 1) / len(stages))
        check(cancel)
        name = stage.name or f"stage {i + 1}"
        report(part, 0.0, f"{name}: compressing")
        apply_recipe_to_state(state, stage, registry=registry, progress=scaled(part, 0.0, 0.2), cancel=cancel)
        so_far = flatten_stages(Recipe(stages=stages[: i + 1]))  # what fine-tuning must keep
        cm = compressed_model_from_state(state, so_far, handle)
        config, holdout = stage_retraining(stage)
        training, held_count = None, 0
        if config is not None:
            assert train_data is not None
            fit, held = split_holdout(train_data, holdout, config.seed)
            held_count = 0 if held is None else len(held)
            report(part, 0.2, f"{name}: retraining {config.epochs} epoch(s)")
            cm, training = finetune_compressed(cm, fit, held, config, registry=registry,
                                               teacher=teacher if teacher is not None else handle.module,
                                               progress=scaled(part, 0.2, 0.85), cancel=cancel)
            check(cancel)
            state = CompressionState(handle=cm.handle, encodings=dict(cm.encodings),
                                     log=[str(x) for x in cm.provenance.get("log", [])], calibration=calibration)
        result = None
        if data is not None:
            result = evaluate(cm.handle.module, data, batch_size=batch_size, reference=reference,
                              progress=scaled(part, 0.85, 0.97), cancel=cancel)
            cm.metrics.update(result.to_dict())
        cm.recipe = recipe_to_dict(recipe)  # what the final file carries: every row has the final header's size
        run.stages.append(StageRecord(name=name, size_bytes=len(encode_sqz(cm, registry=registry)), evaluation=result,
                                      training=training, holdout_images=held_count))
        run.training = training if training is not None else run.training
        run.compressed = cm
    report(progress, 1.0, "stages done")
    return run


def stage_table(rows: list[tuple[str, Optional[float], int, str]], original_bytes: int) -> str:
    """``stage | top-1 % | .sqz bytes | x smaller | retraining`` with ratios against the original's dense size."""
    width = max([len("stage")] + [len(r[0]) for r in rows]) + 2
    lines = [f"{'stage':<{width}}{'top-1 %':>9}{'.sqz bytes':>12}{'x smaller':>11}  retraining"]
    lines.append("-" * max(len(lines[0]), max(width + 34 + len(r[3]) for r in rows)))
    for label, top1, size, note in rows:
        acc = "" if top1 is None else f"{top1 * 100:.2f}"
        lines.append(f"{label:<{width}}{acc:>9}{size:>12,}{original_bytes / max(size, 1):>11.1f}  {note}".rstrip())
    return "\n".join(lines)


def retraining_note(record: StageRecord) -> str:
    """How a stage retrained and how its epoch was chosen (never on the reported data)."""
    t = record.training
    if t is None:
        return "none"
    epochs = len(t.history)
    if record.holdout_images and t.best_epoch is not None:
        return (f"{epochs} epoch(s); kept epoch {t.best_epoch} (best on {record.holdout_images} held-out "
                "training images)")
    return f"{epochs} epoch(s); last epoch kept"

