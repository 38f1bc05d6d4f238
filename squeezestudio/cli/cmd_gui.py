"""``squeezestudio gui [MODEL]``: open the desktop app (also what a bare ``squeezestudio [MODEL]`` does).

The model path, the labels file and the preprocessing flags are checked
here, before a window opens, so a typo is one ``error:`` line and exit code
2 in the terminal rather than a message in a window.
"""

from __future__ import annotations

import argparse
from typing import Any

from squeezestudio.cli.common import add_preprocess_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the desktop app (on the bundled demo without a model)",
                       description="Open SqueezeStudio's window. Without MODEL it opens the bundled "
                                   "demo model and the digits data; `squeezestudio MODEL` is the same "
                                   "as `squeezestudio gui MODEL`.")
    p.add_argument("model", nargs="?", help="model file to open")
    p.add_argument("--data", help="validation data: digits, an image folder or a CSV")
    p.add_argument("--arch", help="zoo architecture for a bare state_dict")
    p.add_argument("--trust", action="store_true", help="allow files that can run code without asking")
    p.add_argument("--labels", metavar="FILE", help="class names: one per line, or a JSON list")
    add_preprocess_arguments(p)
    p.set_defaults(func=run)


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the window passes to the model loader for MODEL: preprocessing, labels, architecture.

    Parsed now (no torch needed) so bad flags fail before the window opens;
    they apply to MODEL only, not to models opened later from the window.
    """
    from squeezestudio.cli.common import preprocess_options_from_args
    from squeezestudio.core.model.labels import read_labels_file

    options: dict[str, Any] = {}
    preprocess = preprocess_options_from_args(args)
    if preprocess:
        options["preprocess"] = preprocess
    if getattr(args, "labels", None):
        options["class_names"] = read_labels_file(args.labels)
    if getattr(args, "arch", None):
        options["arch"] = args.arch
    return options


def check_model_path(model: str) -> None:
    """A model that is not there is an error before any window opens (``model.py:factory`` passes)."""
    from pathlib import Path

    from squeezestudio.core.errors import ModelLoadError

    file = model.rsplit(":", 1)[0] if model.rsplit(":", 1)[0].endswith(".py") else model
    if not Path(file).expanduser().exists():
        raise ModelLoadError(f"there is no model file {model} (and no command of that name; "
                             "see squeezestudio --help)")


def run(args: argparse.Namespace) -> int:
    options = load_options(args)
    if args.model:
        check_model_path(args.model)
    elif options:
        from squeezestudio.core.errors import SqueezeStudioError
        raise SqueezeStudioError("the preprocessing, --labels and --arch flags need a MODEL to apply to")
    from squeezestudio.gui.app import run_gui

    return run_gui(args.model, args.data, trust=bool(args.trust), load_options=options)
