"""``squeezestudio demo``: the bundled model's layer table and measured validation accuracy."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="inspect and evaluate the bundled demo model (no arguments needed)",
                       description="Load the bundled SqueezeNet-style model trained on the digits "
                                   "set, print its layer table, and measure its validation accuracy.")
    p.add_argument("--model", default="squeezenet", choices=["squeezenet", "cnds8", "lenet300_100"],
                   help="which bundled model (default: squeezenet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.cli.cmd_eval import format_result
    from squeezestudio.cli.common import load_data_for
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.io.demo_files import DEMO_DATA, demo_model_path
    from squeezestudio.core.measure.evaluation import evaluate
    from squeezestudio.core.model.inspection import inspect_model
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.loading import load_model

    path = demo_model_path(args.model)
    handle = load_model(path, registry=default_registry())
    print(f"Bundled demo model: {path.name} ({handle.name}, {handle.num_classes} classes, "
          f"input {handle.input_spec.channels}x{handle.input_spec.height}x{handle.input_spec.width})")
    print(inspect_model(handle).to_table())
    data = load_data_for(handle, f"{DEMO_DATA}:val")
    with TerminalProgress("evaluating") as bar:
        result = evaluate(handle.module, data, progress=bar)
    print(f"\nValidation ({data.name}):")
    print(format_result(result))
    return 0
