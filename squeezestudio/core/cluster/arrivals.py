"""A sweep point that came back from the cluster, as an experiment on the trade-off plot.

The worker's .sqz bytes are decoded here (off the GUI thread), so a point
measured on the cluster can be inspected, classified with and exported like
one measured locally -- from exactly the file whose length is its size.
``counts`` (the session's ``image_metrics``) records which images the sweep
measured on, as every point of the window does.
"""

from __future__ import annotations

from typing import Mapping, Optional

from squeezestudio.core.cluster.ray_sweep import PointArrival
from squeezestudio.core.compression.codec import decode_sqz
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.session.experiments import Experiment, new_experiment_id


def arrival_experiment(arrival: PointArrival, *, registry: MethodRegistry, suffix: str = " (cluster)",
                       counts: Optional[Mapping[str, float]] = None) -> Optional[Experiment]:
    """The experiment for a measured point (None for a failed one); ``registry`` decodes its .sqz.

    ``counts``: ``images``/``images_total``, how many of the data's images the sweep was measured on.
    """
    row = arrival.row
    if row is None:
        return None
    m = row.metrics
    metrics = {"top1": m.get("top1"), "top5": m.get("top5"), "agreement": m.get("agreement"),
               "loss": m.get("loss"), "latency": m.get("latency_ms_per_image")}
    original = arrival.index == 0
    if original and metrics["agreement"] is None:
        metrics["agreement"] = 1.0
    return Experiment(id=new_experiment_id(), recipe={} if original else dict(row.recipe),
                      label="original" if original else row.label + suffix, size_bytes=int(row.size_bytes),
                      metrics={**{k: None if v is None else float(v) for k, v in metrics.items()}, **(counts or {})},
                      is_original=original,
                      compressed=None if arrival.sqz is None else decode_sqz(arrival.sqz, registry=registry))
