"""``squeezestudio compare A.sqz B.sqz --data D``: per-layer differences, accuracy, agreement, disagreements.

Either file may be any model the app opens (the original, say): a file that
is not a .sqz is compared as stored dense. Prints the per-layer table, both
accuracies and their agreement, and the first disagreeing images with both
top-5s; ``-o diff.csv`` writes the per-layer table as CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.cli.common import add_data_arguments, load_data_for


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare two models: per-layer diff, accuracy, agreement, disagreements",
                       description="Compare two compressed models (or one and the original) layer by layer "
                                   "and on data: bytes, bits per weight, sparsity and method per layer, both "
                                   "accuracies, their agreement and the images on which they disagree.")
    p.add_argument("a", help="first model (.sqz, or any model file: compared as stored dense)")
    p.add_argument("b", help="second model")
    add_data_arguments(p)
    p.add_argument("--trust", action="store_true", help="allow model files that can run code (see compress)")
    p.add_argument("--show", type=int, default=10, help="disagreeing images to print (default 10)")
    p.add_argument("-o", "--output", help="write the per-layer table as CSV")
    p.set_defaults(func=run)


def _load(path: str, trust: bool, registry: Any) -> tuple[Any, Any, Any, int]:
    """(handle, encodings, size report, file bytes) of a model file."""
    from squeezestudio.core.compression.codec import load_sqz, size_report
    from squeezestudio.core.io.loading import load_model

    if path.lower().endswith(".sqz"):
        cm = load_sqz(path, registry=registry)
        return cm.handle, cm.encodings, size_report(cm, registry=registry), Path(path).stat().st_size
    handle = load_model(path, trust=trust, registry=registry)
    return handle, {}, None, Path(path).stat().st_size


def run(args: argparse.Namespace) -> int:
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.measure.compare import compare_models

    registry = default_registry()
    ha, ea, sa, size_a = _load(args.a, args.trust, registry)
    hb, eb, sb, size_b = _load(args.b, args.trust, registry)
    data = load_data_for(ha, args.data, args=args) if args.data and args.data != "none" else None
    with TerminalProgress("comparing") as bar:
        result = compare_models((ha.module, ea, sa), (hb.module, eb, sb), data,
                                names=(Path(args.a).name, Path(args.b).name), sizes=(size_a, size_b),
                                max_images=max(0, args.show), batch_size=args.batch_size, progress=bar)
    print(result.to_table())
    if result.disagreements:
        print(f"\nimages on which they disagree (first {len(result.disagreements)}):")
        for d in result.disagreements:
            where = d.path or f"image {d.index}"
            print(f"  {where} (label {d.label}):")
            for tag, top in (("A", d.top5_a), ("B", d.top5_b)):
                print(f"    {tag}: " + ", ".join(f"{c} {p * 100:.1f}%" for c, p in top))
    if args.output:
        written = atomic_write_bytes(args.output, result.to_csv().encode("utf-8"))
        print(f"wrote {args.output} ({written:,d} bytes)")
    return 0
