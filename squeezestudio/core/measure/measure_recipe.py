"""Measure one compression configuration: true file size and accuracy on data.

This is the single function behind every point of the trade-off plot, every
row of a sweep and the numbers ``compress`` prints: the size is the byte
length of the .sqz encoding of the compressed model (the file we would
write), and the accuracy is measured on the given data -- never estimated.

A recipe's ``finetune`` section (``epochs``, ``lr``, ``distill_temperature``,
``distill_alpha``, ``seed``, ``fraction``... -- the fields of
:class:`~squeezestudio.core.training.loop.TrainConfig`) retrains the compressed
model before it is encoded and evaluated, keeping its masks, shared
centroids and grids (Deep Compression's retraining), so the point shows the
retrained model's size and accuracy. ``epochs`` 0 or no section: no
retraining. A distill temperature distils the original model into the
compressed one. Retraining never looks at the evaluation data (no best-epoch
selection on it), so the measured accuracy stays an unseen-data number.

Cancelling raises :class:`~squeezestudio.core.progress.Cancelled` at every
stage, retraining included: a half-retrained model is not the configuration
that was asked for, so no point is produced for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.codec import encode_sqz, size_report
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.evaluation import EvalResult, evaluate
from squeezestudio.core.measure.stages import retraining_from_section, run_stages
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled
from squeezestudio.core.training.finetune import finetune_compressed
from squeezestudio.core.training.loop import TrainConfig, TrainResult


@dataclass
class Measurement:
    """A configuration's exact size, measured metrics, and the compressed model itself."""

    size_bytes: int
    evaluation: Optional[EvalResult]
    compressed: CompressedModel
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    size_report: Any = None  # the per-layer SizeReport when asked for (its total is size_bytes)
    training: Optional[TrainResult] = None  # the retraining history, when the recipe retrained
    sqz_bytes: bytes = field(default=b"", repr=False)  # the encoded file (len == size_bytes)
    stages: list[Any] = field(default_factory=list)  # a staged recipe's StageRecords, in order

    def metrics(self) -> dict[str, Any]:
        """Metrics as a flat dict (what experiments and reports store)."""
        d: dict[str, Any] = {"size_bytes": self.size_bytes}
        if self.evaluation is not None:
            d.update(self.evaluation.to_dict())
        return d




def retrain_config(recipe: Any) -> Optional[TrainConfig]:
    """The recipe's retraining settings, or None when it does not retrain (no section, epochs 0).

    Unknown or invalid options are a :class:`RecipeError`; a recipe given as a
    dict or a :class:`Recipe` both work.
    """
    section = recipe.get("finetune") if isinstance(recipe, dict) else getattr(recipe, "finetune", None)
    return retraining_from_section(section)[0]


def retrains(recipe: Any) -> bool:
    """True when the recipe (any of its stages) retrains: it then needs training data."""
    stages = getattr(recipe, "stages", None) or (recipe.get("stages") if isinstance(recipe, dict) else None)
    if stages:
        return any(retrain_config(stage) is not None for stage in stages)
    return retrain_config(recipe) is not None


def _staged(recipe: Any) -> bool:
    """Measured stage by stage: a recipe with stages, or one whose retraining holds out training data."""
    section = getattr(recipe, "finetune", None) or {}
    return bool(getattr(recipe, "stages", None)) or bool(section.get("holdout"))


def _stages(retraining: bool) -> tuple[float, float, float]:
    """Where compression ends, retraining ends and evaluation ends on the 0..1 progress scale."""
    return (0.25, 0.8, 0.95) if retraining else (0.6, 0.6, 0.9)


def measure_recipe(handle: ModelHandle, recipe: Any, data: Optional[ImageDataset] = None, *,
                   registry: MethodRegistry,
                   train_data: Optional[ImageDataset] = None, teacher: Optional[nn.Module] = None,
                   reference: Any = None, batch_size: Optional[int] = None,
                   calibration: Optional[torch.Tensor] = None, with_size_report: bool = False,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> Measurement:
    """Compress ``handle`` with ``recipe``, retrain if it says so, encode it, and evaluate it on ``data``.

    ``reference`` (usually the original model) adds the top-1 agreement.
    ``recipe`` is a :class:`~squeezestudio.core.compression.recipe.Recipe`.
    ``train_data`` is what its ``finetune`` section retrains on (required
    when it asks for epochs); ``teacher`` is the model distilled from when the
    section sets a distill temperature (default: the original, ``handle.module``).
    ``calibration`` (preprocessed images) goes to :func:`compress` for
    substitution methods such as Fire. ``with_size_report`` measures through
    the per-layer size report instead (same bytes, one encoding, more detail).
    ``registry`` holds the methods the recipe names.
    """
    if _staged(recipe):
        return _measure_staged(handle, recipe, data, registry=registry, train_data=train_data, teacher=teacher, reference=reference,
                               batch_size=batch_size, calibration=calibration, with_size_report=with_size_report,
                               progress=progress, cancel=cancel)
    config = retrain_config(recipe)
    if config is not None and train_data is None:
        raise DataError("retraining needs training data; open a training set (digits uses its training "
                        "split) or set the recipe's finetune epochs to 0")
    compressed_at, retrained_at, evaluated_at = _stages(config is not None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    cm = compress(handle, recipe, registry=registry, calibration=calibration, progress=scaled(progress, 0.0, compressed_at),
                  cancel=cancel)
    timings["compress"] = time.perf_counter() - t
    check(cancel)
    training = None
    if config is not None:
        assert train_data is not None
        t = time.perf_counter()
        report(progress, compressed_at, f"retraining {config.epochs} epoch(s)")
        cm, training = finetune_compressed(
            cm, train_data, None, config, registry=registry, teacher=teacher if teacher is not None else handle.module,
            progress=scaled(progress, compressed_at, retrained_at), cancel=cancel)
        timings["retrain"] = time.perf_counter() - t
        check(cancel)  # a cancelled retraining returns its partial model: not the asked-for point
    result = None
    if data is not None:
        t = time.perf_counter()
        result = evaluate(cm.handle.module, data, batch_size=batch_size, reference=reference,
                          progress=scaled(progress, retrained_at, evaluated_at), cancel=cancel)
        timings["evaluate"] = time.perf_counter() - t
        cm.metrics.update(result.to_dict())
        check(cancel)
    return _encoded(cm, result, training, started, timings, with_size_report, progress, cancel, registry)


def _encoded(cm: CompressedModel, result: Optional[EvalResult], training: Optional[TrainResult], started: float,
             timings: dict[str, float], with_size_report: bool, progress: Optional[ProgressCallback],
             cancel: Optional[CancelToken], registry: MethodRegistry) -> Measurement:
    """Encode last: the file carries the metrics, so this is the exact length an export writes."""

    t = time.perf_counter()
    sizes = None
    if with_size_report:
        sizes = size_report(cm, cancel=cancel, registry=registry)
        data = sizes.file_bytes  # the report encodes the file: len(data) == total_bytes
    else:
        data = encode_sqz(cm, registry=registry)
    timings["encode"] = time.perf_counter() - t
    report(progress, 1.0, "measured")
    return Measurement(size_bytes=len(data), evaluation=result, compressed=cm,
                       seconds=time.perf_counter() - started, timings=timings, size_report=sizes,
                       training=training, sqz_bytes=data)


def _measure_staged(handle: ModelHandle, recipe: Any, data: Optional[ImageDataset], *,
                    registry: MethodRegistry, with_size_report: bool,
                    progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
                    **kwargs: Any) -> Measurement:
    """A staged recipe: each stage applied, retrained and measured in turn (see :mod:`.stages`)."""
    started = time.perf_counter()
    run = run_stages(handle, recipe, data, registry=registry, progress=scaled(progress, 0.0, 0.95), cancel=cancel, **kwargs)
    check(cancel)
    measured = _encoded(run.compressed, run.stages[-1].evaluation, run.training, started,
                        {"stages": time.perf_counter() - started}, with_size_report, progress, cancel,
                        registry)
    measured.stages = run.stages
    return measured
