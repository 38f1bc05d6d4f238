"""``squeezestudio gui [MODEL]``: open the desktop app (also what a bare ``squeezestudio`` does)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the desktop app (on the bundled demo without a model)",
                       description="Open SqueezeStudio's window. Without MODEL it opens the bundled "
                                   "demo model and the digits data.")
    p.add_argument("model", nargs="?", help="model file to open")
    p.add_argument("--data", help="validation data: digits, an image folder or a CSV")
    p.add_argument("--arch", help="zoo architecture for a bare state_dict")
    p.add_argument("--trust", action="store_true", help="allow files that can run code without asking")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.gui.app import run_gui

    return run_gui(args.model, args.data, trust=bool(args.trust))
