"""Sweeps and sensitivity scans on a real local Ray instance of two CPUs (the ``cluster`` extra).

One Ray instance serves the whole session (it takes several seconds to start).
Points must equal a local run's: the same rows (the measured latency aside:
it is a wall-clock number of the machine) and byte-identical .sqz files (they
carry a fixed-width metric block and no time stamp).
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.data.folders import load_dataset, match_classes
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.sensitivity import layer_sensitivity
from squeezestudio.core.measure.sweep import grid_recipes, measure_point, parse_grid_axis, sweep_csv, sweep_points
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.progress import CancelToken, Cancelled

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'squeezestudio[cluster]' runs these")

from squeezestudio.core.measure.point_log import PointLog  # noqa: E402
from squeezestudio.core.cluster.ray_sensitivity import layer_sensitivity_on_ray  # noqa: E402
from squeezestudio.core.cluster.ray_sweep import run_sweep_on_ray  # noqa: E402
from squeezestudio.core.compression.registry import default_registry

TASK_TITLE = b"ray::measure_sweep_point"


@pytest.fixture
def cluster(ray_cluster):
    return ray_cluster


@lru_cache(maxsize=1)
def tiny():
    torch.manual_seed(0)
    spec = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
    return zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8), load_digits_split("val", spec)


@lru_cache(maxsize=1)
def demo():
    """The bundled demo (about a second per point here): slow enough to catch a task running."""
    handle = load_model(str(demo_model_path()), registry=default_registry())
    data = match_classes(load_dataset("digits", PreprocessSpec.from_input_spec(handle.input_spec)),
                         handle.class_names)
    return handle, data


def grid(*axes):
    return grid_recipes([parse_grid_axis(a) for a in axes])


def csv_without_timings(text: str, drop=("latency_ms_per_image",)):
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, name in enumerate(rows[0]) if name not in drop]
    return [[r[i] for i in keep] for r in rows]


def task_pids() -> list[int]:
    """Processes whose title says they are running a sweep point right now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(TASK_TITLE):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def wait_for_task(timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = task_pids()
        if pids:
            return pids[0]
        time.sleep(0.01)
    raise AssertionError("no sweep task started")


def test_sweep_on_ray_gives_the_local_rows_and_files(cluster, tmp_path):
    handle, data = tiny()
    points = grid("prune.sparsity=0.5,0.9", "cluster.bits=none,4")
    local = [measure_point(handle, data, label, recipe, registry=default_registry()) for label, recipe in sweep_points(points)]
    arrivals = []
    result = run_sweep_on_ray(cluster, handle, data, points, log=PointLog(tmp_path / "s.points"),
                              on_point=arrivals.append)
    assert not result.failed and result.resumed == 0
    assert sorted(a.index for a in arrivals) == list(range(len(local)))
    assert csv_without_timings(sweep_csv(result.rows)) == csv_without_timings(sweep_csv([r for r, _ in local]))
    by_index = {a.index: a for a in arrivals}
    for i, (row, sqz) in enumerate(local):
        remote = by_index[i]
        assert remote.row.size_bytes == len(remote.sqz) == row.size_bytes == len(sqz)
        assert remote.sqz == sqz  # byte for byte: weights, encodings, header, metric block
        assert remote.worker.pid != os.getpid()
    assert len({a.sqz for a in arrivals}) == len(arrivals)  # the points differ from one another
    assert len({a.worker.pid for a in arrivals}) == 2  # both CPUs of the instance measured points


def test_a_rerun_measures_only_the_new_points_and_a_bad_point_fails_alone(cluster, tmp_path):
    handle, data = tiny()
    log = PointLog(tmp_path / "s.points")
    first = run_sweep_on_ray(cluster, handle, data, grid("prune.sparsity=0.5"), log=log)
    measured = []
    again = run_sweep_on_ray(cluster, handle, data, grid("prune.sparsity=0.5,0.7,1.5"), log=log,
                             on_point=lambda a: measured.append(a) if not a.resumed else None)
    assert again.resumed == 2 and [r.size_bytes for r in again.rows[:2]] == [r.size_bytes for r in first.rows]
    assert sorted(a.index for a in measured) == [2, 3]
    assert [r.label for r in again.rows] == ["original", "prune.sparsity=0.5", "prune.sparsity=0.7"]
    assert [f.label for f in again.failed] == ["prune.sparsity=1.5"]
    assert "sparsity" in again.failed[0].reason


def test_a_killed_worker_is_survived(cluster):
    handle, data = demo()
    points = grid("prune.sparsity=0.5")
    arrivals, errors = [], []

    def sweep():
        try:
            arrivals.append(run_sweep_on_ray(cluster, handle, data, points))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    victim = wait_for_task()
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    assert not errors and not thread.is_alive()
    result = arrivals[0]
    assert not result.failed and [r.label for r in result.rows] == [label for label, _ in sweep_points(points)]
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # it really died; its point was measured again elsewhere


def test_a_cancelled_sweep_leaves_no_task_running(cluster, tmp_path):
    handle, data = demo()
    token, outcome, arrived = CancelToken(), [], []
    points = grid("prune.sparsity=0.3,0.5,0.7,0.8,0.9")
    log = PointLog(tmp_path / "s.points")

    def sweep():
        try:
            run_sweep_on_ray(cluster, handle, data, points, log=log, on_point=arrived.append, cancel=token)
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=sweep)
    thread.start()
    wait_for_task()
    token.cancel()
    thread.join(60)
    assert outcome == ["cancelled"] and not thread.is_alive()
    assert task_pids() == []
    assert len(arrived) < len(points) + 1
    assert len(log.measured()) == len(arrived)  # every point that came back is in the results file


def test_sensitivity_on_ray_is_the_local_scan(cluster):
    handle, data = tiny()
    options = dict(layers=["fc1", "fc3"], prune_levels=(0.5, 0.9), quant_bits=(4,))
    local = layer_sensitivity(handle, data, **options, registry=default_registry())
    remote = layer_sensitivity_on_ray(cluster, handle, data, **options)
    assert not remote.failed and remote.result.to_csv() == local.to_csv()


def table(text: str) -> list[list[str]]:
    """The sweep table's rows (configuration, bytes, top-1, pareto), split on runs of spaces."""
    lines = text.split("configuration", 1)[1].splitlines()[1:]
    return [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip() and not line.startswith("wrote")]


def test_the_cli_prints_the_local_table_with_ray_local(cluster, tmp_path, capsys):
    from squeezestudio.cli.main import main
    from squeezestudio.core.io.loading.saving import save_safetensors

    handle, _ = tiny()
    model = tmp_path / "lenet.safetensors"
    save_safetensors(handle, model)
    args = ["sweep", str(model), "--data", "digits", "--grid", "prune.sparsity=0.5,0.9"]
    assert main(args + ["-o", str(tmp_path / "local.csv")]) == 0
    local = table(capsys.readouterr().out)
    assert main(args + ["-o", str(tmp_path / "ray.csv"), "--ray", "local", "--workers", "2"]) == 0
    remote = table(capsys.readouterr().out)
    assert len(local) == 3 and remote == local  # sizes included
    files = {p.name: p.read_bytes() for p in (tmp_path / "ray.points").glob("*.sqz")}  # what the workers sent
    assert sorted(map(len, files.values())) == sorted(int(r[1].replace(",", "")) for r in remote)
    assert files == {p.name: p.read_bytes() for p in (tmp_path / "local.points").glob("*.sqz")}  # byte for byte
