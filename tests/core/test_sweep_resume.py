"""A local sweep keeps every point in OUTPUT.points/ as it is measured, so an interrupted sweep resumes."""

from __future__ import annotations

import csv
import io
import re
from functools import lru_cache

import pytest
import torch

from squeezestudio.cli.main import main
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.measure.point_log import PointLog
from squeezestudio.core.measure.sweep import grid_recipes, measure_point, parse_grid_axis, run_sweep, sweep_points
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.progress import CancelToken, Cancelled

POINTS = grid_recipes([parse_grid_axis("prune.sparsity=0.5,0.7,0.9")])


@lru_cache(maxsize=1)
def tiny():
    torch.manual_seed(0)
    spec = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
    return zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8), load_digits_split("val", spec)


def numbers(row):
    """A row without its wall-clock latency."""
    return row.label, row.size_bytes, {k: v for k, v in row.metrics.items() if not k.startswith("latency")}


def test_an_interrupted_sweep_resumes_without_measuring_the_points_again(tmp_path):
    handle, data = tiny()
    log = PointLog(tmp_path / "sweep.points")
    token = CancelToken()

    def stop_at_the_third(fraction: float, message: str = "") -> None:
        if message == POINTS[1][0]:  # the original and the first point are measured by then
            token.cancel()
    with pytest.raises(Cancelled):
        run_sweep(handle, data, POINTS, registry=default_registry(), log=log, progress=stop_at_the_third, cancel=token)
    kept = log.measured()
    assert len(kept) == 2 and len(list(log.folder.glob("*.sqz"))) == 2

    rows = run_sweep(handle, data, POINTS, registry=default_registry(), log=log)
    assert [r.resumed for r in rows] == [True, True, False, False]
    assert len(log.measured()) == 4 and len(log.path.read_text().splitlines()) == 4  # nothing measured twice
    fresh = run_sweep(handle, data, POINTS, registry=default_registry())
    assert [numbers(r) for r in rows] == [numbers(r) for r in fresh]
    by_label = {e["label"]: e for e in log.measured().values()}
    for label, recipe in sweep_points(POINTS):
        _, sqz = measure_point(handle, data, label, recipe, registry=default_registry())
        assert (log.folder / by_label[label]["sqz"]).read_bytes() == sqz  # the very file a new run encodes

    other = data.subset(torch.arange(len(data) // 2))  # other data: nothing stored applies to it
    again = run_sweep(handle, other, POINTS[:1], registry=default_registry(), log=log)
    assert [r.resumed for r in again] == [False, False]


def test_the_cli_sweep_resumes_from_its_points_folder(tmp_path, capsys):
    from squeezestudio.core.io.loading.saving import save_safetensors

    handle, _ = tiny()
    model = tmp_path / "lenet.safetensors"
    save_safetensors(handle, model)
    args = ["sweep", str(model), "--data", "digits", "-o", str(tmp_path / "s.csv")]
    assert main(args + ["--grid", "prune.sparsity=0.5,0.9"]) == 0
    first = capsys.readouterr().out
    assert "resumed" not in first
    sizes = sorted(int(r["size_bytes"]) for r in csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert sorted(p.stat().st_size for p in (tmp_path / "s.points").glob("*.sqz")) == sizes
    assert main(args + ["--grid", "prune.sparsity=0.5,0.7,0.9"]) == 0
    second = capsys.readouterr().out
    assert re.search(r"resumed 3 point\(s\) already measured in .*s\.points", second)
    assert len(list((tmp_path / "s.points").glob("*.sqz"))) == 4
