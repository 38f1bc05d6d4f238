"""Measure one compression configuration: true file size and accuracy on data.

This is the single function behind every point of the trade-off plot, every
row of a sweep and the numbers ``compress`` prints: the size is the byte
length of the .sqz encoding of the compressed model (the file we would
write), and the accuracy is measured on the given data -- never estimated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.evaluation import EvalResult, evaluate
from squeezestudio.core.model_handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


@dataclass
class Measurement:
    """A configuration's exact size, measured metrics, and the compressed model itself."""

    size_bytes: int
    evaluation: Optional[EvalResult]
    compressed: CompressedModel
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    size_report: Any = None  # the per-layer SizeReport when asked for (its total is size_bytes)

    def metrics(self) -> dict[str, Any]:
        """Metrics as a flat dict (what experiments and reports store)."""
        d: dict[str, Any] = {"size_bytes": self.size_bytes}
        if self.evaluation is not None:
            d.update(self.evaluation.to_dict())
        return d


def measure_recipe(handle: ModelHandle, recipe: Any, data: Optional[ImageDataset] = None, *,
                   reference: Optional[nn.Module] = None, batch_size: int = 256,
                   calibration: Optional[torch.Tensor] = None, with_size_report: bool = False,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> Measurement:
    """Compress ``handle`` with ``recipe``, encode it, and evaluate it on ``data``.

    ``reference`` (usually the original model) adds the top-1 agreement.
    ``recipe`` is a :class:`~squeezestudio.core.compression.recipe.Recipe`.
    ``calibration`` (preprocessed images) goes to :func:`compress` for
    substitution methods such as Fire. ``with_size_report`` measures through
    the per-layer size report instead (same bytes, one encoding, more detail).
    """
    from squeezestudio.core.compression.codec import encode_sqz, size_report
    from squeezestudio.core.compression.pipeline import compress

    started = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    cm = compress(handle, recipe, calibration=calibration, progress=scaled(progress, 0.0, 0.6),
                  cancel=cancel)
    timings["compress"] = time.perf_counter() - t
    check(cancel)
    result = None
    if data is not None:
        t = time.perf_counter()
        result = evaluate(cm.handle.module, data, batch_size=batch_size, reference=reference,
                          progress=scaled(progress, 0.6, 0.9), cancel=cancel)
        timings["evaluate"] = time.perf_counter() - t
        cm.metrics.update(result.to_dict())
        check(cancel)
    # Encode last: the file carries the metrics, so this is the exact length an export writes.
    t = time.perf_counter()
    sizes = None
    if with_size_report:
        sizes = size_report(cm, cancel=cancel)
        size = int(sizes.total_bytes)  # == len(encode_sqz(cm)): the report encodes the file
    else:
        size = len(encode_sqz(cm))
    timings["encode"] = time.perf_counter() - t
    report(progress, 1.0, "measured")
    return Measurement(size_bytes=size, evaluation=result, compressed=cm,
                       seconds=time.perf_counter() - started, timings=timings, size_report=sizes)
