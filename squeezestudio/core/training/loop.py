"""Supervised training and fine-tuning of a classifier on an in-memory data set.

One loop serves the bundled demo's training script and fine-tuning after
compression: callers pass :class:`StepHooks` (compression methods' hooks
re-apply masks, share cluster gradients, quantize straight-through; the loop
knows nothing of compression), and an
optional teacher adds knowledge distillation. Deterministic for a seed;
cancelling returns the best model seen so far.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError, RecipeError
from squeezestudio.core.model.outputs import model_logits
from squeezestudio.core.progress import CancelToken, Cancelled, ProgressCallback, report


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (defaults suit the digits demo)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd"
    momentum: float = 0.9
    seed: int = 0
    fraction: float = 1.0  # share of the training split used per epoch
    shift_augment: int = 0  # random translation by up to this many pixels
    distill_temperature: Optional[float] = None
    distill_alpha: float = 0.5  # weight of the distillation term


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_top1: Optional[float]
    seconds: float


@dataclass
class TrainResult:
    """What happened: per-epoch history, best validation accuracy, whether cancelled."""

    history: list[EpochRecord] = field(default_factory=list)
    best_val_top1: Optional[float] = None
    best_epoch: Optional[int] = None
    cancelled: bool = False


def _accuracy(model: nn.Module, data: ImageDataset, batch_size: int = 512) -> float:
    correct = 0
    model.eval()
    device = device_of(model)
    with torch.inference_mode():
        for x, y in data.batches(batch_size):
            correct += int((model_logits(model, x.to(device)).argmax(1).cpu() == y).sum())
    return correct / max(1, len(data))


def device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are: batches go there (the CPU for a model without parameters)."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate the whole batch by one random offset, padding with the border value."""
    if max_shift <= 0:
        return x
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., max_shift + dy:max_shift + dy + h, max_shift + dx:max_shift + dx + w]


def training_loss(logits: torch.Tensor, y: torch.Tensor, teacher_logits: Optional[torch.Tensor],
                  config: TrainConfig) -> torch.Tensor:
    """Cross-entropy, blended with Hinton et al.'s distillation term when a teacher is given.

    ``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE``:
    the ``T^2`` keeps the soft term's gradients on the scale of the hard one's
    as the temperature changes, so ``alpha`` means the same at any ``T``.
    """
    hard = F.cross_entropy(logits, y)
    if teacher_logits is None or config.distill_temperature is None:
        return hard
    t = config.distill_temperature
    soft = F.kl_div(F.log_softmax(logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * (t * t)
    if config.distill_alpha >= 1.0:
        return soft
    return config.distill_alpha * soft + (1.0 - config.distill_alpha) * hard


_loss = training_loss  # the name the first version used


def train_config_from_dict(values: Optional[dict[str, Any]], base: TrainConfig = TrainConfig()) -> TrainConfig:
    """A :class:`TrainConfig` from a recipe's ``finetune`` section (unknown keys are an error)."""
    if not values:
        return base
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RecipeError(f"finetune: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(base, key)
        try:
            if key == "distill_temperature":
                kwargs[key] = None if value is None else float(value)
            elif value is None:
                raise ValueError(key)
            elif isinstance(default, bool):
                kwargs[key] = bool(value)
            elif isinstance(default, int):
                kwargs[key] = int(value)
            elif isinstance(default, float):
                kwargs[key] = float(value)
            else:
                kwargs[key] = str(value)
        except (TypeError, ValueError):
            kind = {"int": "whole number", "float": "number", "bool": "true or false"}.get(
                type(default).__name__, "text")
            raise RecipeError(f"finetune: {key} must be a {kind}, not {value!r}") from None
    config = dataclasses.replace(base, **kwargs)
    _check_config(config)
    return config


def _check_config(config: TrainConfig) -> None:
    """Reject settings the loop cannot run with, in one sentence each."""
    if config.epochs < 0:
        raise RecipeError(f"finetune: epochs must be 0 or more, not {config.epochs}")
    if config.batch_size < 1:
        raise RecipeError(f"finetune: batch_size must be at least 1, not {config.batch_size}")
    if not config.lr > 0:
        raise RecipeError(f"finetune: lr must be positive, not {config.lr}")
    if not 0.0 < config.fraction <= 1.0:
        raise RecipeError(f"finetune: fraction must be in (0, 1], not {config.fraction}")
    if config.optimizer not in ("adam", "sgd"):
        raise RecipeError(f"finetune: optimizer must be adam or sgd, not {config.optimizer!r}")
    if config.distill_temperature is not None and not config.distill_temperature > 0:
        raise RecipeError(f"finetune: distill_temperature must be positive, not {config.distill_temperature}")
    if not 0.0 <= config.distill_alpha <= 1.0:
        raise RecipeError(f"finetune: distill_alpha must be in [0, 1], not {config.distill_alpha}")


class StepHooks(Protocol):
    """What the loop calls around each optimizer step; any attribute may be None.

    ``before_step`` runs after ``loss.backward()`` and before the step,
    ``after_step`` after it, ``finish`` once when training ends (also on
    cancel). Compression's ``FinetuneHooks`` has this shape.
    """

    before_step: Optional[Callable[[], None]]
    after_step: Optional[Callable[[], None]]
    finish: Optional[Callable[[], None]]


def train_classifier(model: nn.Module, train: ImageDataset, val: Optional[ImageDataset] = None,
                     config: TrainConfig = TrainConfig(), *,
                     hooks: Sequence[StepHooks] = (), teacher: Optional[nn.Module] = None,
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> TrainResult:
    """Train ``model`` in place; on return it holds the best validation weights.

    ``hooks`` run around every optimizer step so that compression survives
    training. With ``val`` the weights of the best epoch are kept (also when
    cancelled); without it, the last weights. Raises nothing on cancel: the
    result's ``cancelled`` flag says so.
    """
    if train.labels is None:
        raise DataError(f"retraining needs labelled data, but {train.name} has no labels (a folder of loose "
                        "images); give a folder with one sub-folder per class or a CSV of path,label")
    _check_config(config)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                                     weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if teacher is not None:
        teacher.eval()
    n = len(train)
    per_epoch = max(1, int(math.ceil(n * config.fraction)))
    steps_per_epoch = max(1, int(math.ceil(per_epoch / config.batch_size)))
    total = steps_per_epoch * max(1, config.epochs)
    result = TrainResult()
    best_state = None
    was_training = model.training
    device = device_of(model)  # the data stays on the CPU; each batch moves to the model
    step = 0
    try:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=gen)[:per_epoch]
            running = 0.0
            for b in range(steps_per_epoch):
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                idx = order[b * config.batch_size:(b + 1) * config.batch_size]
                x = _shift(train.images[idx], config.shift_augment, gen).to(device)
                y = train.labels[idx].to(device)
                teacher_logits = None
                if teacher is not None and config.distill_temperature is not None:
                    with torch.no_grad():
                        teacher_logits = model_logits(teacher, x)
                opt.zero_grad(set_to_none=True)
                loss = training_loss(model_logits(model, x), y, teacher_logits, config)
                loss.backward()
                for h in hooks:
                    if h.before_step is not None:
                        h.before_step()
                opt.step()
                for h in hooks:
                    if h.after_step is not None:
                        h.after_step()
                running += float(loss.detach())
                step += 1
                report(progress, step / total, f"epoch {epoch + 1}/{config.epochs} loss {running / (b + 1):.3f}")
            val_top1 = _accuracy(model, val) if val is not None else None
            result.history.append(EpochRecord(epoch + 1, running / steps_per_epoch, val_top1,
                                              time.perf_counter() - started))
            if val_top1 is not None and (result.best_val_top1 is None or val_top1 > result.best_val_top1):
                result.best_val_top1, result.best_epoch = val_top1, epoch + 1
                best_state = copy.deepcopy(model.state_dict())
    except Cancelled:
        result.cancelled = True
    finally:
        if best_state is not None:
            model.load_state_dict(best_state)
        for h in hooks:
            if h.finish is not None:
                h.finish()
        model.train(was_training)
    return result
