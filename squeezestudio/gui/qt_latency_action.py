"""Run > Measure latency of this point: time the point's deployable exports in a worker.

The selected point's float ONNX and int8 ONNX (calibrated on the training
images) are timed in onnxruntime by
:func:`~squeezestudio.core.measure.latency.deployable_latency`; the medians
join the point's metrics (a saved project keeps them) and the status bar
says what was measured, with the threads used.
"""

from __future__ import annotations

from typing import Any

from squeezestudio.core.measure.latency import TARGETS

JOB_KEY = "latency"


def measure_point_latency(window: Any) -> None:
    """Start timing the current point's exports (a message if there is no compressed point)."""
    current = window.plot.current_id if window.plot is not None else None
    experiment = window.session.experiments.find(current or "") or window.session.latest_compressed()
    if experiment is None or experiment.compressed is None:
        window.show_message("Evaluate a point first: latency is measured on its exported model.")
        return
    session, cm = window.session, experiment.compressed

    def job(progress: Any = None, cancel: Any = None) -> Any:
        from squeezestudio.core.measure.latency import deployable_latency

        images = session.calibration_images()
        return deployable_latency(cm, targets=TARGETS, calibration=images, progress=progress, cancel=cancel)

    def done(results: Any) -> None:
        for result in results.values():
            experiment.metrics.update(result.metrics())
        window.last_latency = results
        window.show_message(f"{experiment.label}: " + "; ".join(r.describe() for r in results.values()))

    window.jobs.start(JOB_KEY, job, on_finished=done)
