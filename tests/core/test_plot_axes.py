"""The frontier of any pair of plotted numbers, each with its own better side; the step line between them."""

from __future__ import annotations

import numpy as np
import pytest

from squeezestudio.core.measure.latency import LatencyResult
from squeezestudio.core.session.experiments import Experiment, pareto_frontier
from squeezestudio.core.session.plot_axes import (PLOT_METRICS, SIZE, frontier_steps, latency_key, plot_frontier,
                                                  plot_metric)


def _dominated(p, q, x_small, y_large) -> bool:
    """True when q dominates p under the given directions."""
    bx = q[0] <= p[0] if x_small else q[0] >= p[0]
    by = q[1] >= p[1] if y_large else q[1] <= p[1]
    return bx and by and tuple(q) != tuple(p)


def _brute(points, x_small, y_large):
    keep = []
    for i, p in enumerate(points):
        if p[0] is None or p[1] is None:
            continue
        others = [q for j, q in enumerate(points) if j != i and q[0] is not None and q[1] is not None]
        duplicate_before = any(tuple(points[j]) == tuple(p) for j in range(i))
        if not duplicate_before and not any(_dominated(p, q, x_small, y_large) for q in others):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


@pytest.mark.parametrize("x_small, y_large", [(True, True), (False, True), (True, False), (False, False)])
@pytest.mark.parametrize("seed", range(4))
def test_frontier_in_every_direction_matches_brute_force(seed, x_small, y_large):
    rng = np.random.default_rng(seed)
    points = [(int(x), int(y)) for x, y in rng.integers(0, 12, size=(50, 2))]  # many ties on purpose
    points[5] = (points[5][0], None)
    points[9] = (None, points[9][1])
    got = pareto_frontier(points, x_smaller_better=x_small, y_larger_better=y_large)
    assert got == _brute(points, x_small, y_large)


def _exp(name, size, top1, int8_ms=None, original=False):
    metrics = {"top1": top1}
    if int8_ms is not None:
        metrics.update(LatencyResult("onnx-int8", int8_ms, 16, int8_ms * 10, 1, 20, size).metrics())
    return Experiment(name, {}, name, size, metrics, is_original=original)


POINTS = [_exp("orig", 400, 0.95, 4.0, original=True), _exp("a", 200, 0.94, 1.0), _exp("b", 60, 0.80, 2.0),
          _exp("c", 90, 0.93), _exp("d", 80, 0.10, 0.5)]


def test_the_latency_a_measurement_stores_is_a_plot_metric():
    key = latency_key("onnx-int8")
    assert key in PLOT_METRICS and plot_metric(key).smaller_is_better and plot_metric(key).unit == "ms"
    assert POINTS[1].metric(key) == 1.0
    assert plot_metric(key).value(POINTS[3]) is None  # c was never timed
    assert plot_metric("top1").shown(0.5) == 50.0 and not plot_metric("top1").smaller_is_better
    with pytest.raises(ValueError, match="unknown plot metric"):
        plot_metric("loss_of_faith")


def test_plot_frontier_uses_each_metrics_direction_and_skips_chance_points():
    ids = lambda idx: [POINTS[i].id for i in idx]  # noqa: E731
    assert ids(plot_frontier(POINTS, SIZE, "top1")) == ["b", "c", "a", "orig"]
    assert ids(plot_frontier(POINTS, SIZE, "top1", chance=0.1)) == ["b", "c", "a", "orig"]
    # latency across, accuracy up: d (0.5 ms) is at chance, so a (1 ms, 94%) starts the frontier
    key = latency_key("onnx-int8")
    assert ids(plot_frontier(POINTS, key, "top1", chance=0.1)) == ["a", "orig"]
    assert ids(plot_frontier(POINTS, key, "top1")) == ["d", "a", "orig"]
    # accuracy across, size up (smaller better): ordered by rising accuracy
    assert ids(plot_frontier(POINTS, "top1", SIZE, chance=0.1)) == ["b", "c", "a", "orig"]
    # size against latency: both smaller is better
    assert ids(plot_frontier(POINTS, SIZE, key)) == ["b", "d"]


def test_step_line_goes_across_first_when_smaller_x_is_better_and_up_first_otherwise():
    xy = [(1.0, 10.0), (2.0, 20.0), (4.0, 30.0)]
    assert frontier_steps(xy, True) == ([1.0, 2.0, 2.0, 4.0, 4.0], [10.0, 10.0, 20.0, 20.0, 30.0])
    assert frontier_steps(xy, False) == ([1.0, 1.0, 2.0, 2.0, 4.0], [10.0, 20.0, 20.0, 30.0, 30.0])
    assert frontier_steps([], True) == ([], [])
