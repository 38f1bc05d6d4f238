"""``squeezestudio sensitivity MODEL``: per-layer accuracy as each layer alone is compressed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.cli.cluster_options import add_cluster_arguments, cluster_target, print_failures
from squeezestudio.cli.common import (add_data_arguments, add_model_arguments, check_outputs, load_data_for,
                                      load_model_from_args, print_warnings)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensitivity", help="per-layer accuracy as each layer alone is pruned / quantized",
                       description="Prune (then, separately, quantize) each layer on its own at "
                                   "increasing levels and measure accuracy: CSV + PNG curves.")
    add_model_arguments(p, optional=True)
    add_data_arguments(p)
    p.add_argument("--sparsities", default="0.25,0.5,0.7,0.8,0.9,0.95", help="pruning levels")
    p.add_argument("--bits", default="8,6,4,3,2", help="quantization bit-widths (2 or more)")
    p.add_argument("--layers", help="comma-separated layer names (default: every conv/linear layer)")
    p.add_argument("-o", "--output", default="sensitivity.csv", help="CSV (default sensitivity.csv); "
                   "PNGs are written beside it (-prune.png, -quantize.png)")
    add_cluster_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.cli.offscreen_plots import save_curves_png
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.measure.sensitivity import (check_levels, check_scan, compressible_layers,
                                                        layer_sensitivity, parse_levels, sensitivity_jobs)

    sparsities, bits = parse_levels(args.sparsities, "sparsities"), parse_levels(args.bits, "bits")
    check_levels(sparsities, bits, ())
    check_outputs(args.output)
    target, failed = cluster_target(args), []
    handle = load_model_from_args(args)
    print_warnings(handle)
    layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
    names = layers if layers is not None else compressible_layers(handle)
    check_scan(handle, names, sensitivity_jobs(names, sparsities, [int(b) for b in bits]),
               registry=default_registry())  # before the data is even loaded
    data = load_data_for(handle, args.data, args=args)
    out = Path(args.output)
    options = dict(layers=layers, prune_levels=sparsities, quant_bits=[int(b) for b in bits],
                   batch_size=args.batch_size)
    with TerminalProgress("sensitivity") as bar:
        if target is None:
            result = layer_sensitivity(handle, data, registry=default_registry(), progress=bar, **options)
        else:
            result, failed = _sensitivity_on_ray(target, handle, data, options, out, bar)
    atomic_write_bytes(out, result.to_csv().encode())
    base = result.baseline_top1
    print(f"baseline top-1 {base * 100:.2f}%" if base is not None else "baseline: no labels")
    for method, x_label, invert in (("prune", "sparsity of that layer", False),
                                    ("quantize", "bits of that layer", True)):
        curves = result.curves(method)
        png = out.with_name(f"{out.stem}-{method}.png")
        save_curves_png(curves, png, title=f"Sensitivity to {method} ({handle.name})", x_label=x_label,
                        baseline=base, invert_x=invert)
        print(f"\n{method}: top-1 by layer and level")
        for layer, pts in curves.items():
            cells = "  ".join(f"{x:g}:{'-' if y is None else f'{y * 100:.1f}'}" for x, y in pts)
            print(f"  {layer:28s} {cells}")
        print(f"wrote {png}")
    print(f"wrote {out}")
    return print_failures(failed)


def _sensitivity_on_ray(target: Any, handle: Any, data: Any, options: dict, out: Path, bar: Any) -> tuple[Any, list]:
    """The scan measured on Ray, resuming from (and recording into) the results folder beside ``out``."""
    from squeezestudio.core.cluster.connection import RayConnection
    from squeezestudio.core.measure.point_log import PointLog, log_folder_for
    from squeezestudio.core.cluster.ray_sensitivity import layer_sensitivity_on_ray

    log = PointLog(log_folder_for(out))
    with RayConnection(target) as conn:
        scan = layer_sensitivity_on_ray(conn, handle, data, log=log, progress=bar, **options)
    if scan.resumed:
        print(f"resumed {scan.resumed} point(s) already measured in {log.folder}")
    return scan.result, scan.failed
