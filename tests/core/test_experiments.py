"""ExperimentLog bookkeeping and the Pareto frontier."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.session.experiments import Experiment, ExperimentLog, KEEP_ARTIFACTS, pareto_frontier


def _brute_force(points):
    """Reference: a point is kept if no other point dominates it (first of duplicates kept)."""
    keep = []
    for i, (s, a) in enumerate(points):
        if a is None or np.isnan(a):
            continue
        dominated = False
        for j, (s2, a2) in enumerate(points):
            if j == i or a2 is None or np.isnan(a2):
                continue
            better_or_equal = s2 <= s and a2 >= a
            strictly = s2 < s or a2 > a
            if (better_or_equal and strictly) or (s2 == s and a2 == a and j < i):
                dominated = True
                break
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (points[i][0], -points[i][1]))


def test_pareto_small_known_case():
    points = [(100, 0.9), (50, 0.8), (80, 0.7), (200, 0.95), (50, 0.85), (300, 0.95)]
    # (80, .7) dominated by (50, .85); (50, .8) dominated by (50, .85); (300, .95) by (200, .95)
    assert pareto_frontier(points) == [4, 0, 3]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_matches_brute_force(seed):
    torch.manual_seed(seed)
    n = 60
    sizes = torch.randint(1, 20, (n,)).tolist()  # many ties on purpose
    accs = (torch.randint(0, 10, (n,)).float() / 10).tolist()
    points = list(zip(sizes, accs))
    points[3] = (points[3][0], None)
    assert pareto_frontier(points) == _brute_force(points)


def test_pareto_edge_cases():
    assert pareto_frontier([]) == []
    assert pareto_frontier([(10, None)]) == []
    assert pareto_frontier([(10, float("nan")), (20, 0.5)]) == [1]
    assert pareto_frontier([(10, 0.5), (10, 0.5)]) == [0]


def _exp(i, size, top1, original=False):
    return Experiment(id=f"e{i}", recipe={"methods": {"prune": {"sparsity": i / 10}}}, label=f"run {i}",
                      size_bytes=size, metrics={"top1": top1, "top5": None}, is_original=original)


def test_log_append_find_callbacks_and_duplicates():
    log = ExperimentLog()
    calls = []
    log.on_change.append(lambda: calls.append(len(log)))
    log.append(_exp(0, 1000, 0.9, original=True))
    log.append(_exp(1, 500, 0.8))
    assert calls == [1, 2]
    assert log.find("e1").size_bytes == 500
    assert log.find("nope") is None
    assert log.original().id == "e0"
    with pytest.raises(SqueezeStudioError):
        log.append(_exp(1, 1, 0.1))
    assert log.pareto_ids("top1") == ["e1", "e0"]
    assert log.pareto_ids("top5") == []


def test_log_drops_old_artifacts_but_keeps_the_original():
    log = ExperimentLog()
    log.append(_exp(0, 1000, 0.9, original=True))
    log.list()[0].compressed = "original-cm"
    for i in range(1, KEEP_ARTIFACTS + 3):
        e = _exp(i, 1000 - i, 0.5)
        e.compressed = f"cm{i}"
        log.append(e)
    held = [e.id for e in log if e.compressed is not None]
    assert "e0" in held
    assert len(held) == KEEP_ARTIFACTS + 1
    assert "e1" not in held and f"e{KEEP_ARTIFACTS + 2}" in held


def test_log_dict_round_trip_and_csv(tmp_path):
    log = ExperimentLog([_exp(0, 1000, 0.9, original=True), _exp(1, 321, 0.75)])
    back = ExperimentLog.from_dict(log.to_dict())
    assert [e.to_dict() for e in back] == [e.to_dict() for e in log]
    path = tmp_path / "points.csv"
    written = log.to_csv(path)
    assert written == path.stat().st_size
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["id"] for r in rows] == ["e0", "e1"]
    assert rows[1]["size_bytes"] == "321" and float(rows[1]["top1"]) == 0.75
    assert rows[1]["top5"] == "" and rows[0]["is_original"] == "1"


def test_malformed_entries_are_clear_errors():
    with pytest.raises(SqueezeStudioError, match="malformed"):
        ExperimentLog.from_dict({"experiments": [{"id": "x"}]})
    with pytest.raises(SqueezeStudioError, match="malformed"):
        ExperimentLog.from_dict({"experiments": "nope"})


def test_format_bytes():
    from squeezestudio.core.session.experiments import format_bytes
    assert format_bytes(950) == "950 B"
    assert format_bytes(12_345) == "12.3 KB"
    assert format_bytes(4_560_000) == "4.56 MB"
    assert format_bytes(245_000_000) == "245 MB"


def test_points_at_or_below_chance_are_never_pareto_optimal():
    log = ExperimentLog([Experiment("tiny", {}, "tiny", 100, {"top1": 0.1, "agreement": 0.12}),
                         Experiment("good", {}, "good", 1000, {"top1": 0.9, "agreement": 0.95})], chance=0.1)
    assert log.pareto_ids() == ["good"] and log.pareto_ids("agreement") == ["good"]
    log.chance = None  # unknown class count: nothing is filtered
    assert log.pareto_ids() == ["tiny", "good"]


def test_a_point_within_sampling_noise_of_chance_counts_as_guessing():
    from squeezestudio.core.session.experiments import above_chance

    assert not above_chance(0.1031, 0.1, n=359)  # 37 of 359 digits: guessing gives 36 +- 6
    assert above_chance(0.1031, 0.1)  # without n only chance itself is guessing
    assert above_chance(0.20, 0.1, n=359) and not above_chance(0.10, 0.1)
    assert above_chance(None, 0.1, n=359) and above_chance(0.05, None)
    log = ExperimentLog([Experiment("o", {}, "original", 300, {"top1": 0.97, "n": 359}, is_original=True),
                         Experiment("a", {}, "a", 100, {"top1": 0.1031, "n": 359}),
                         Experiment("b", {}, "b", 200, {"top1": 0.80, "n": 359})], chance=0.1)
    assert log.pareto_ids("top1") == ["b", "o"]


def test_the_windows_points_count_their_images_for_the_chance_rule_too():
    log = ExperimentLog([Experiment("a", {}, "a", 100, {"top1": 0.1031, "images": 359.0}),
                         Experiment("b", {}, "b", 200, {"top1": 0.80, "images": 359.0})], chance=0.1)
    assert log.pareto_ids("top1") == ["b"]
