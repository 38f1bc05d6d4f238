"""``squeezestudio sweep MODEL --grid ...``: many configurations, CSV + a trade-off PNG.

The PNG plots any two of the app's plot metrics (``--x``, ``--y``, coloured
by ``--color``), the names and better sides coming from
:mod:`squeezestudio.core.session.plot_axes`; the frontier printed, written to
the CSV and drawn is that module's :func:`plot_frontier` for the chosen pair.
Latencies exist only with ``--latency``, which times every row's exports.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.cli.cluster_options import add_cluster_arguments, cluster_target, print_failures
from squeezestudio.cli.common import (add_data_arguments, add_model_arguments, check_outputs, load_data_for,
                                      load_training_for,
                                      load_model_from_args, print_warnings)
from squeezestudio.cli.latency_options import add_latency_arguments
from squeezestudio.core.session.plot_axes import DEFAULT_X, DEFAULT_Y, LATENCY_KEYS, PLOT_METRICS, plot_metric

AXIS_FLAGS = (("x", "--x"), ("y", "--y"), ("color", "--color"))


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
    names = list(PLOT_METRICS)
    g = p.add_argument_group("plot", "what the PNG shows (and which frontier is printed): any of "
                                     f"{', '.join(names)}; latencies need --latency")
    g.add_argument("--x", default=DEFAULT_X, choices=names, metavar="METRIC",
                   help=f"across (default {DEFAULT_X}, on a log axis)")
    g.add_argument("--y", "--metric", dest="y", default=DEFAULT_Y, choices=names, metavar="METRIC",
                   help=f"up (default {DEFAULT_Y}; --metric is the older name)")
    g.add_argument("--color", "--colour", dest="color", default=None, choices=names, metavar="METRIC",
                   help="colour the points by a third metric (viridis; grey where a point lacks it)")
    add_latency_arguments(p)
    add_cluster_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.cli.offscreen_plots import save_tradeoff_png
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.compression.recipe import load_recipe
    from squeezestudio.core.session.plot_axes import plot_frontier
    from squeezestudio.core.errors import DataError
    from squeezestudio.core.compression.pipeline import needs_calibration
    from squeezestudio.core.measure.measure_recipe import retrains
    from squeezestudio.core.measure.point_log import PointLog, log_folder_for
    from squeezestudio.core.measure.sweep import grid_recipes, parse_grid_axis, run_sweep, sweep_csv

    check_axes(args)
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
    train, calibration = load_training_for(handle, args, data, retrain=retraining,
                                           calibrate=calibrated or args.latency)  # int8 latency calibrates too
    out = Path(args.output)
    log = PointLog(log_folder_for(out))
    with TerminalProgress(f"sweeping {len(points)} points") as bar:
        if target is None:
            rows = run_sweep(handle, data, points, registry=registry, batch_size=args.batch_size,
                             train_data=train, calibration=calibration if calibrated else None, log=log,
                             progress=bar)
        else:
            rows, failed = _sweep_on_ray(target, handle, data, points, args.batch_size, log, bar)
    resumed = sum(r.resumed for r in rows)
    if resumed:
        print(f"resumed {resumed} point(s) already measured in {log.folder}")
    if args.latency:
        from squeezestudio.core.measure.sweep_latency import time_sweep_rows

        with TerminalProgress(f"timing the deployable exports of {len(rows)} points") as bar:
            time_sweep_rows(handle, data, points, rows, log, registry=registry, calibration=calibration,
                            batch_size=args.batch_size, train_data=train, batch=args.latency_batch,
                            threads=args.threads, repeats=args.repeats, progress=bar)
        print(f"latency: median of {args.repeats} runs at batch 1 in onnxruntime, {args.threads} thread(s)")
    chance = 1.0 / len(handle.class_names) if handle.class_names else None  # guessing is never Pareto-optimal
    front = plot_frontier(rows, args.x, args.y, chance)
    print_table(rows, front, args)
    atomic_write_bytes(out, sweep_csv(rows, front, extra=LATENCY_KEYS if args.latency else ()).encode())
    png = Path(args.png) if args.png else out.with_suffix(".png")
    save_tradeoff_png(rows, png, args.x, args.y, front, colour=args.color)
    print(f"wrote {out} and {png}")
    return print_failures(failed)


def check_axes(args: argparse.Namespace) -> None:
    """Refuse, before any work, a plotted latency that this run would not measure (one sentence)."""
    from squeezestudio.core.errors import DataError

    for dest, flag in AXIS_FLAGS:
        name = getattr(args, dest)
        if name in LATENCY_KEYS and not args.latency:
            raise DataError(f"{flag} {name} is the latency of each point's export, which only --latency measures: "
                            f"add --latency, or plot another metric")


def print_table(rows: list, front: list[int], args: argparse.Namespace) -> None:
    """One line per row: bytes, then each plotted metric, ``*`` on the frontier of the chosen pair."""
    shown = list(dict.fromkeys(k for k in (args.x, args.y, args.color) if k and k != "size_bytes"))
    widths = [max(8, len(k)) for k in shown]
    if (args.x, args.y) != (DEFAULT_X, DEFAULT_Y):
        print(f"Pareto frontier of {args.y} against {args.x}")
    print(f"{'configuration':45s} {'bytes':>12s} " + " ".join(f"{k:>{w}s}" for k, w in zip(shown, widths))
          + "  pareto")
    on_front = set(front)
    for i, r in enumerate(rows):
        cells = " ".join(f"{plot_metric(k).text(r.metric(k)):>{w}s}" for k, w in zip(shown, widths))
        print(f"{r.label[:45]:45s} {r.size_bytes:>12,d} {cells}  {'*' if i in on_front else ''}")
    for dest, flag in AXIS_FLAGS:
        name = getattr(args, dest)
        if name and all(plot_metric(name).value(r) is None for r in rows):
            print(f"note: no point has {name} ({flag}), so the plot shows nothing for it"
                  + (" (top-5 needs a model with at least five classes)" if name == "top5" else ""))


def _sweep_on_ray(target: Any, handle: Any, data: Any, points: list, batch_size: int, log: Any,
                  bar: Any) -> tuple[list, list]:
    """The sweep's rows measured on Ray, resuming from (and recording into) the results folder ``log``."""
    from squeezestudio.core.cluster.connection import RayConnection
    from squeezestudio.core.cluster.ray_sweep import run_sweep_on_ray

    with RayConnection(target) as conn:
        result = run_sweep_on_ray(conn, handle, data, points, batch_size=batch_size, log=log, progress=bar)
    return result.rows, result.failed
