"""``squeezestudio sweep MODEL --grid ...``: many configurations, CSV + size-vs-accuracy PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.cli.cluster_options import add_cluster_arguments, cluster_target, print_failures
from squeezestudio.cli.common import (add_data_arguments, add_model_arguments, check_outputs, load_data_for,
                                      load_training_for,
                                      load_model_from_args, print_warnings)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="measure a grid of configurations (size vs accuracy, Pareto frontier)",
                       description="Evaluate the Cartesian product of the --grid axes on top of an "
                                   "optional base recipe; every point is the exact .sqz size and the "
                                   "accuracy measured on --data. Each point is stored (with its .sqz) in "
                                   "OUTPUT.points/ as soon as it is measured, so a rerun measures only "
                                   "the points not there yet.")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--grid", action="append", required=True, metavar="METHOD.OPTION=V1,V2,...",
                   help="a swept option, e.g. prune.sparsity=0,0.5,0.9 or cluster.bits=none,4,5 (repeatable)")
    p.add_argument("--recipe", help="base recipe the grid is applied on (staged: on its last stage)")
    p.add_argument("--train-data", default="digits:train", help="training data for recipes that retrain")
    p.add_argument("-o", "--output", default="sweep.csv", help="CSV of every point (default sweep.csv)")
    p.add_argument("--png", default=None, help="plot file (default: the CSV name with .png)")
    p.add_argument("--metric", default="top1", choices=["top1", "top5", "agreement"])
    add_cluster_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.cli.offscreen_plots import save_tradeoff_png
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.compression.recipe import load_recipe
    from squeezestudio.core.session.experiments import above_chance, pareto_frontier
    from squeezestudio.core.errors import DataError
    from squeezestudio.core.compression.pipeline import needs_calibration
    from squeezestudio.core.measure.measure_recipe import retrains
    from squeezestudio.core.measure.point_log import PointLog, log_folder_for
    from squeezestudio.core.measure.sweep import grid_recipes, parse_grid_axis, run_sweep, sweep_csv

    axes = [parse_grid_axis(text) for text in args.grid]
    target, failed = cluster_target(args), []
    check_outputs(args.output, args.png or str(Path(args.output).with_suffix(".png")))
    handle = load_model_from_args(args)
    print_warnings(handle)
    data = load_data_for(handle, args.data, args=args)
    points = grid_recipes(axes, load_recipe(args.recipe) if args.recipe else None)
    registry = default_registry()
    retraining = any(retrains(recipe) for _, recipe in points)
    calibrated = any(needs_calibration(recipe, registry) for _, recipe in points)
    if (retraining or calibrated) and target is not None:
        raise DataError("recipes that retrain, substitute layers or quantize activations are measured on this "
                        "machine only for now; leave out --ray")
    train, calibration = load_training_for(handle, args, data, retrain=retraining, calibrate=calibrated)
    out = Path(args.output)
    log = PointLog(log_folder_for(out))
    with TerminalProgress(f"sweeping {len(points)} points") as bar:
        if target is None:
            rows = run_sweep(handle, data, points, registry=registry, batch_size=args.batch_size,
                             train_data=train, calibration=calibration, log=log, progress=bar)
        else:
            rows, failed = _sweep_on_ray(target, handle, data, points, args.batch_size, log, bar)
    resumed = sum(r.resumed for r in rows)
    if resumed:
        print(f"resumed {resumed} point(s) already measured in {log.folder}")
    chance = 1.0 / len(handle.class_names) if handle.class_names else None  # guessing is never Pareto-optimal
    front = pareto_frontier([(r.size_bytes, r.metrics.get(args.metric) if above_chance(r.metrics.get("top1"), chance, r.metrics.get("n"))
                              else None) for r in rows])
    print(f"{'configuration':45s} {'bytes':>12s} {args.metric:>8s}  pareto")
    for i, r in enumerate(rows):
        value = r.metrics.get(args.metric)
        shown = "-" if value is None else f"{value * 100:.2f}%"
        print(f"{r.label[:45]:45s} {r.size_bytes:>12,d} {shown:>8s}  {'*' if i in front else ''}")
    atomic_write_bytes(out, sweep_csv(rows, front).encode())
    png = Path(args.png) if args.png else out.with_suffix(".png")
    save_tradeoff_png(rows, png, args.metric, front)
    print(f"wrote {out} and {png}")
    return print_failures(failed)


def _sweep_on_ray(target: Any, handle: Any, data: Any, points: list, batch_size: int, log: Any,
                  bar: Any) -> tuple[list, list]:
    """The sweep's rows measured on Ray, resuming from (and recording into) the results folder ``log``."""
    from squeezestudio.core.cluster.connection import RayConnection
    from squeezestudio.core.cluster.ray_sweep import run_sweep_on_ray

    with RayConnection(target) as conn:
        result = run_sweep_on_ray(conn, handle, data, points, batch_size=batch_size, log=log, progress=bar)
    return result.rows, result.failed
