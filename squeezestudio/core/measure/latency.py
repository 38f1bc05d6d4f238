"""Latency of what would be deployed, measured in onnxruntime on this machine.

A point's deployable forms are its float ONNX (for a structured-pruned point
that is the smaller dense model: structured pruning removes the channels)
and its int8 QDQ ONNX. Each is timed as the median of repeated runs at batch
1 and at a chosen batch, after warm-up runs, with the number of onnxruntime
threads stated -- never estimated from sizes or operation counts.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.latency_settings import (DEFAULT_BATCH, DEFAULT_REPEATS, DEFAULT_THREADS,  # noqa: F401
                                                        TARGET_LABELS, TARGETS)
from squeezestudio.core.measure.onnx_evaluation import OnnxSource, onnx_session
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled

WARMUP = 3


@dataclass(frozen=True)
class LatencyResult:
    """Median milliseconds per run at batch 1 and at ``batch``, the threads used and the file's size."""

    target: str
    batch1_ms: float
    batch: int
    batch_ms: float
    threads: int
    repeats: int
    size_bytes: int

    @property
    def per_image_ms(self) -> float:
        """Milliseconds per image at the larger batch (throughput view)."""
        return self.batch_ms / max(1, self.batch)

    def metrics(self) -> dict[str, Any]:
        """Flat metric keys a point stores, e.g. ``latency_onnx-int8_b1_ms``."""
        key = f"latency_{self.target}"
        return {f"{key}_b1_ms": self.batch1_ms, f"{key}_b{self.batch}_ms": self.batch_ms,
                f"{key}_ms_per_image": self.per_image_ms, f"{key}_threads": self.threads,
                f"{key}_bytes": self.size_bytes}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{TARGET_LABELS.get(self.target, self.target)}: {self.batch1_ms:.3f} ms at batch 1, "
                f"{self.batch_ms:.3f} ms at batch {self.batch} ({self.per_image_ms:.3f} ms/image), "
                f"median of {self.repeats} runs, {self.threads} thread(s), {self.size_bytes:,d} bytes")


def _median_ms(session: Any, feed: dict[str, np.ndarray], repeats: int, cancel: Optional[CancelToken]) -> float:
    for _ in range(WARMUP):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        check(cancel)
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def onnx_latency(source: OnnxSource, input_shape: Sequence[int], *, target: str = "onnx",
                 batch: int = DEFAULT_BATCH, threads: int = DEFAULT_THREADS, repeats: int = DEFAULT_REPEATS,
                 cancel: Optional[CancelToken] = None) -> LatencyResult:
    """Median latency of an ONNX file (or bytes) on random inputs of ``(C, H, W)`` at batch 1 and ``batch``."""
    if batch < 1 or threads < 1 or repeats < 1:
        raise DataError("latency needs a batch, a thread count and a number of repeats of at least 1")
    session = onnx_session(source, threads=threads)
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    shape = tuple(int(s) for s in input_shape)
    one = _median_ms(session, {name: rng.standard_normal((1,) + shape, dtype=np.float32)}, repeats, cancel)
    many = _median_ms(session, {name: rng.standard_normal((batch,) + shape, dtype=np.float32)}, repeats, cancel)
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    return LatencyResult(target=target, batch1_ms=one, batch=batch, batch_ms=many, threads=threads,
                         repeats=repeats, size_bytes=size)


def deployable_latency(model: Union[CompressedModel, ModelHandle], *, targets: Sequence[str] = TARGETS,
                       calibration: Any = None, batch: int = DEFAULT_BATCH, threads: int = DEFAULT_THREADS,
                       repeats: int = DEFAULT_REPEATS, progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelToken] = None) -> dict[str, LatencyResult]:
    """Export ``model`` in each deployable form and time it; ``calibration`` images are needed for int8."""
    from squeezestudio.core.io.export_onnx import export_onnx
    from squeezestudio.core.io.export_onnx_int8 import activation_grids, in_file_layout, quantize_onnx_int8

    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise DataError(f"unknown latency target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    handle = model.handle if isinstance(model, CompressedModel) else model
    encodings = model.encodings if isinstance(model, CompressedModel) else {}
    spec = handle.input_spec
    # The files keep the original's interface: a channels-last model is timed on channels-last inputs.
    shape = (spec.height, spec.width, spec.channels) if spec.layout == "nhwc" else (spec.channels, spec.height,
                                                                                    spec.width)
    report(progress, 0.0, "exporting the float model")
    with tempfile.TemporaryDirectory(prefix="squeezestudio-latency-") as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(handle, float_path)
        float_data = float_path.read_bytes()
    results: dict[str, LatencyResult] = {}
    for i, target in enumerate(targets):
        check(cancel)
        step = scaled(progress, 0.1 + 0.9 * i / len(targets), 0.1 + 0.9 * (i + 1) / len(targets))
        data = float_data
        if target == "onnx-int8":
            if calibration is None:
                raise DataError("timing the int8 model needs calibration images (the training data)")
            data = quantize_onnx_int8(float_data, in_file_layout(handle, calibration), encodings=encodings,
                                      grids=activation_grids(handle.module), cancel=cancel).data
        report(step, 0.5, f"timing the {TARGET_LABELS[target]}")
        results[target] = onnx_latency(data, shape, target=target, batch=batch, threads=threads,
                                       repeats=repeats, cancel=cancel)
    report(progress, 1.0, "latency measured")
    return results
