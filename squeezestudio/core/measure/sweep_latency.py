"""The deployable latency of every sweep row, timed on the very .sqz the sweep measured.

``sweep --latency`` plots latency like any other number, so each row needs
the medians Run > Measure latency gives a point in the app: its float and int8
ONNX exports timed in onnxruntime
(:func:`~squeezestudio.core.measure.latency.deployable_latency`). The files
come from the sweep's results folder (each point's .sqz is recorded there as it
is measured, here or on Ray), so nothing is compressed twice. Timings belong to
this machine and this moment: they join the rows' metrics, never the results
file, and a resumed sweep times its points again.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from squeezestudio.core.compression.codec import load_sqz
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.latency import deployable_latency
from squeezestudio.core.measure.latency_settings import DEFAULT_BATCH, DEFAULT_REPEATS, DEFAULT_THREADS, TARGETS
from squeezestudio.core.measure.point_log import PointLog
from squeezestudio.core.measure.sweep import SweepRow, sweep_keys, sweep_points
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


def time_sweep_rows(handle: ModelHandle, data: ImageDataset, points: Sequence[tuple[str, Any]],
                    rows: Sequence[SweepRow], log: PointLog, *, registry: MethodRegistry,
                    calibration: Optional[torch.Tensor], batch_size: Optional[int] = None,
                    train_data: Optional[ImageDataset] = None, batch: int = DEFAULT_BATCH,
                    threads: int = DEFAULT_THREADS, repeats: int = DEFAULT_REPEATS,
                    progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> None:
    """Add each row's latency metrics (``latency_onnx_b1_ms``, ...) to ``row.metrics``.

    ``points``, ``batch_size`` and ``train_data`` are what the sweep was run
    with: they name each row's file in ``log``. ``calibration`` images set the
    int8 export's activation ranges (the training images, as in the app).
    """
    all_points = sweep_points(points)
    keys = sweep_keys(handle, data, all_points, batch_size=batch_size, train_data=train_data)
    key_of = {label: key for (label, _), key in zip(all_points, keys)}  # by label: a failed Ray point has no row
    for i, row in enumerate(rows):
        check(cancel)
        path = log.sqz_path(key_of.get(row.label, ""))
        if row.label not in key_of or not path.is_file():
            raise DataError(f"{row.label}: its .sqz is not in {log.folder}, so its latency cannot be timed; "
                            "run the sweep again to measure it")
        report(progress, i / len(rows), f"timing {row.label}")
        results = deployable_latency(load_sqz(path, registry=registry), targets=TARGETS, calibration=calibration,
                                     batch=batch, threads=threads, repeats=repeats,
                                     progress=scaled(progress, i / len(rows), (i + 1) / len(rows)), cancel=cancel)
        for result in results.values():
            row.metrics.update(result.metrics())
    report(progress, 1.0, "latency measured")
