"""``squeezestudio inspect MODEL``: the per-layer parameter table."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezestudio.cli.common import add_model_arguments, check_outputs, load_model_from_args, print_warnings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show where a model's parameters are, layer by layer",
                       description="Print the per-layer table (type, shape, parameters, non-zeros, "
                                   "MACs at the model's input size, dense bytes) and totals.")
    add_model_arguments(p)
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.model.inspection import inspect_model
    from squeezestudio.core.printable import printable, printable_lines
    from squeezestudio.core.model.outputs import describe_outputs

    check_outputs(args.csv, args.json)
    handle = load_model_from_args(args)
    print_warnings(handle)
    report = inspect_model(handle)
    spec = handle.input_spec
    print(f"{printable(handle.name)} ({handle.source_format}), input {spec.channels}x{spec.height}x{spec.width}, "
          f"{handle.num_classes} classes")
    print(f"preprocessing: {spec.describe()}")
    print(f"output: {describe_outputs(handle)}")
    print(printable_lines(report.to_table()))
    if args.csv:
        atomic_write_bytes(Path(args.csv), report.to_csv().encode())
    if args.json:
        atomic_write_bytes(Path(args.json), report.to_json().encode())
    return 0
