"""A point's own stored model measured on other images: "Measure on all images" for a retrained point.

Measuring a recipe again gives the same network only when nothing in it
trains: a retrained point was fine-tuned on the training data it was given
then (a search point on the training data minus the search's held-out part),
so running its recipe again would retrain and measure another network than
the one whose bytes the point shows. This evaluates the stored model itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from squeezestudio.core.progress import CancelToken, ProgressCallback, report
from squeezestudio.core.session.experiments import Experiment, new_experiment_id
from squeezestudio.core.session.interactive_subset import image_metrics


def metrics_of(result: Any) -> dict[str, Optional[float]]:
    """Our metric names from an EvalResult (its dict, attributes as a fallback)."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(vars(result))
    latency = d.get("latency_ms_per_image", d.get("latency"))
    out = {"top1": d.get("top1"), "top5": d.get("top5"), "agreement": d.get("agreement"),
           "loss": d.get("loss"), "latency": latency}
    return {k: (None if v is None else float(v)) for k, v in out.items()}


def retrained(recipe: dict[str, Any]) -> bool:
    """True when the recipe (any stage) fine-tunes: its stored model is then the only way to measure it again."""
    from squeezestudio.core.compression.recipe import recipe_from_dict  # lazy: torch
    from squeezestudio.core.measure.measure_recipe import retrains

    return retrains(recipe_from_dict(recipe))


def measure_stored_model(session: Any, experiment: Experiment, images: Optional[int], *, label: str,
                         progress: Optional[ProgressCallback] = None,
                         cancel: Optional[CancelToken] = None) -> Experiment:
    """A new point: ``experiment``'s own model (memory or its stored file) measured on ``images`` images.

    Safe in a worker thread; raises :class:`PointEvicted` when the store no
    longer holds the model (its recipe is then all that is left).
    """
    from squeezestudio.core.compression.codec import size_report  # lazy: torch
    from squeezestudio.core.measure.evaluation import evaluate

    cm, _ = session.point_model(experiment, rebuild=False)
    full = session.data
    data = session.interactive_data(images, full)
    report(progress, 0.0, "evaluating the point's own model")
    result = evaluate(cm.handle.module, data, reference=session._reference_top1(session.handle, data, cancel),
                      progress=progress, cancel=cancel)
    measured = replace(cm, metrics={**cm.metrics, **result.to_dict()})  # the stored point keeps its own file
    sizes = size_report(measured, cancel=cancel, registry=session.registry)
    report(progress, 1.0, "done")
    return Experiment(id=new_experiment_id(), recipe=dict(experiment.recipe), label=label,
                      size_bytes=sizes.total_bytes, metrics={**metrics_of(result), **image_metrics(data, full)},
                      compressed=measured, size_report=sizes)
