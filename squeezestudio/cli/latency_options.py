"""``--latency`` options shared by commands that produce a model: time its deployable exports."""

from __future__ import annotations

import argparse
from typing import Any

from squeezestudio.core.measure.latency_settings import DEFAULT_BATCH, DEFAULT_REPEATS, DEFAULT_THREADS, TARGETS


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("latency")
    g.add_argument("--latency", action="store_true",
                   help="time the float and int8 ONNX exports in onnxruntime (median of repeated runs)")
    g.add_argument("--latency-batch", type=int, default=DEFAULT_BATCH,
                   help=f"the batch timed besides batch 1 (default {DEFAULT_BATCH})")
    g.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"onnxruntime threads (default {DEFAULT_THREADS})")
    g.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed runs per batch size")


def print_latency(cm: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Measure and print the latency; returns the metrics (a point stores them, a written .sqz does not change)."""
    from squeezestudio.cli.cmd_export import calibration_images
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.measure.latency import deployable_latency

    images = calibration_images(cm.handle, args.calibration)
    with TerminalProgress("timing the deployable exports") as bar:
        results = deployable_latency(cm, targets=TARGETS, calibration=images, batch=args.latency_batch,
                                     threads=args.threads, repeats=args.repeats, progress=bar)
    print("latency in onnxruntime on this machine:")
    metrics: dict[str, Any] = {}
    for result in results.values():
        print(f"  {result.describe()}")
        metrics.update(result.metrics())
    return metrics
