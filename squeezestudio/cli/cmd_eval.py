"""``squeezestudio eval MODEL --data D``: accuracy, loss and latency measured on data."""

from __future__ import annotations

import argparse

from squeezestudio.cli.common import (add_data_arguments, add_model_arguments, load_data_for,
                                      load_model_from_args, print_warnings)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure top-1/top-5 accuracy, loss and latency on data",
                       description="Evaluate a model (any format, including .sqz) on labelled data. "
                                   "With --reference, also the agreement of top-1 predictions.")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--reference", help="a second model to measure top-1 agreement with")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def format_result(result) -> str:
    """One readable line per metric."""
    lines = [f"examples     {result.n}"]
    if result.top1 is not None:
        lines.append(f"top-1        {result.top1 * 100:.2f}%")
    if result.top5 is not None:
        lines.append(f"top-5        {result.top5 * 100:.2f}%")
    if result.loss is not None:
        lines.append(f"loss         {result.loss:.4f}")
    if result.agreement is not None:
        lines.append(f"agreement    {result.agreement * 100:.2f}%")
    lines.append(f"latency      {result.latency_ms_per_image:.3f} ms/image, "
                 f"{result.latency_ms_per_batch:.2f} ms/batch of {result.batch_size}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json

    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.measure.evaluation import evaluate
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.loading import load_model
    from squeezestudio.core.printable import printable, printable_lines

    handle = load_model_from_args(args)
    print_warnings(handle)
    data = load_data_for(handle, args.data, args=args)
    reference = None
    if args.reference:
        reference = load_model(args.reference, arch=args.arch, trust=args.trust, registry=default_registry()).module
    with TerminalProgress("evaluating") as bar:
        result = evaluate(handle.module, data, batch_size=args.batch_size, reference=reference, progress=bar)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{printable(handle.name)} on {printable(data.name)}")
        print(printable_lines(format_result(result)))
    return 0
