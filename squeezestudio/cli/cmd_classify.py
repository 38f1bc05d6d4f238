"""``squeezestudio classify MODEL IMAGE...``: top-k classes of each image."""

from __future__ import annotations

import argparse

from squeezestudio.cli.common import add_model_arguments, load_model_from_args, print_warnings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify image files (top-k with class names)",
                       description="Decode each image robustly, preprocess it as the model expects "
                                   "and print the top-k classes with probabilities.")
    add_model_arguments(p)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("-k", "--top", type=int, default=5, help="how many classes to show (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.core.measure.classify import classify_files
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.printable import printable

    handle = load_model_from_args(args)
    print_warnings(handle)
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    results = classify_files(args.images, {"model": handle.module}, spec, handle.class_names, k=args.top)
    failures = 0
    for item in results:
        if item.error:
            failures += 1
            print(f"{printable(item.path)}: error: {printable(item.error)}")
            continue
        top = ", ".join(f"{printable(p.class_name)} {p.probability * 100:.1f}%" for p in item.top["model"])
        print(f"{printable(item.path)}: {top}")
    return 2 if failures == len(results) else 0
