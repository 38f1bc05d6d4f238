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

from torch import nn

from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.evaluation import EvalResult, evaluate
from squeezestudio.core.model_handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, scaled


@dataclass
class Measurement:
    """A configuration's exact size, measured metrics, and the compressed model itself."""

    size_bytes: int
    evaluation: Optional[EvalResult]
    compressed: CompressedModel
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Metrics as a flat dict (what experiments and reports store)."""
        d: dict[str, Any] = {"size_bytes": self.size_bytes}
        if self.evaluation is not None:
            d.update(self.evaluation.to_dict())
        return d


def measure_recipe(handle: ModelHandle, recipe: Any, data: Optional[ImageDataset] = None, *,
                   reference: Optional[nn.Module] = None, batch_size: int = 256,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> Measurement:
    """Compress ``handle`` with ``recipe``, encode it, and evaluate it on ``data``.

    ``reference`` (usually the original model) adds the top-1 agreement.
    ``recipe`` is a :class:`~squeezestudio.core.compression.recipe.Recipe`.
    """
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress

    started = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    cm = compress(handle, recipe, progress=scaled(progress, 0.0, 0.6), cancel=cancel)
    timings["compress"] = time.perf_counter() - t
    check(cancel)
    t = time.perf_counter()
    size = len(encode_sqz(cm))
    timings["encode"] = time.perf_counter() - t
    check(cancel)
    result = None
    if data is not None:
        t = time.perf_counter()
        result = evaluate(cm.handle.module, data, batch_size=batch_size, reference=reference,
                          progress=scaled(progress, 0.7, 1.0), cancel=cancel)
        timings["evaluate"] = time.perf_counter() - t
        cm.metrics.update(result.to_dict())
    return Measurement(size_bytes=size, evaluation=result, compressed=cm,
                       seconds=time.perf_counter() - started, timings=timings)
