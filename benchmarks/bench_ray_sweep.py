"""A 16-point sweep on the bundled demo: measured serially here vs as Ray tasks (``--ray local``).

The grid is prune.sparsity x quantize.bits (4 x 4 = 16 points, plus the
original every sweep measures first). The serial run is ``run_sweep`` (what
``squeezestudio sweep`` does without ``--ray``); the Ray run is
``run_sweep_on_ray`` on a local instance with ``--workers`` CPUs, recording
into a results folder as the CLI does. Ray's start-up is timed on its own; the
Ray sweep is run twice: cold (workers import torch and fetch the model and the
data once each) and warm (a second sweep on the same instance, as in the
desktop app or a long-running cluster).

Per-task overhead = (Ray wall - serial wall / workers) x workers / tasks: the
time each task costs beyond a perfectly parallel run of the same work (on a
machine shared with other work this moves with the load, so the load average
is printed too). Ray's own round trip per task is also timed directly: 200
empty tasks on the warm instance, submitted and awaited the same way.
Run: ``python benchmarks/bench_ray_sweep.py [--workers 2] [--address local]``
(``--address HOST:PORT`` measures a real cluster instead of a local instance).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from squeezestudio.core.cluster.connection import ClusterTarget, RayConnection
from squeezestudio.core.measure.point_log import PointLog
from squeezestudio.core.cluster.ray_sweep import run_sweep_on_ray
from squeezestudio.core.cluster.task_stream import remote_function
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset, match_classes
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.sweep import grid_recipes, parse_grid_axis, run_sweep
from squeezestudio.core.compression.registry import default_registry

EMPTY_TASKS = 200


def empty_task() -> int:
    """A task that does nothing: what Ray itself costs per task."""
    return 0


def round_trip_ms(conn: RayConnection) -> float:
    task = remote_function(conn, empty_task)
    conn.ray.get([task.remote() for _ in range(10)])  # warm the function's registration
    t = time.perf_counter()
    pending = [task.remote() for _ in range(EMPTY_TASKS)]
    while pending:
        _, pending = conn.ray.wait(pending, num_returns=1)
    return 1000.0 * (time.perf_counter() - t) / EMPTY_TASKS


GRID = ("prune.sparsity=0.5,0.7,0.8,0.9", "quantize.bits=none,4,6,8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", default="local")
    args = parser.parse_args()

    handle = load_model(str(demo_model_path()), registry=default_registry())
    data = match_classes(load_dataset("digits", PreprocessSpec.from_input_spec(handle.input_spec)),
                         handle.class_names)
    points = grid_recipes([parse_grid_axis(a) for a in GRID])
    tasks = len(points) + 1
    print(f"demo {handle.name} ({sum(p.numel() for p in handle.module.parameters()):,} parameters), "
          f"{len(data)} images, {len(points)} grid points + the original = {tasks} measurements; "
          f"torch threads here {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")

    t = time.perf_counter()
    serial = run_sweep(handle, data, points, registry=default_registry())
    serial_s = time.perf_counter() - t
    print(f"serial (run_sweep)            {serial_s:7.1f} s   {serial_s / tasks:5.2f} s/point")

    t = time.perf_counter()
    with RayConnection(ClusterTarget(args.address, workers=args.workers)) as conn:
        start_s = time.perf_counter() - t
        workers = conn.concurrency()
        print(f"Ray start-up / connect         {start_s:7.1f} s   ({workers} workers)")
        walls = []
        for run in ("cold", "warm"):
            with tempfile.TemporaryDirectory() as folder:
                t = time.perf_counter()
                result = run_sweep_on_ray(conn, handle, data, points, log=PointLog(Path(folder) / "s.points"))
                walls.append(time.perf_counter() - t)
            same = [(r.label, r.metrics["top1"]) for r in result.rows] == \
                   [(r.label, r.metrics["top1"]) for r in serial]
            overhead = (walls[-1] - serial_s / workers) * workers / tasks
            print(f"Ray sweep, {run} workers        {walls[-1]:7.1f} s   serial/Ray {serial_s / walls[-1]:4.2f}x   "
                  f"per-task overhead {overhead:+5.2f} s   same rows as serial: {'yes' if same else 'NO'}"
                  f"{'' if not result.failed else f'   {len(result.failed)} failed'}")
        print(f"Ray round trip of an empty task     {round_trip_ms(conn):6.1f} ms")
    total = start_s + walls[0]
    print(f"one-off command (start-up + cold sweep) {total:.1f} s: serial/Ray {serial_s / total:4.2f}x; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
