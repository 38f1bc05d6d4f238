"""Entry point of the ``squeezestudio`` command.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``
and ``run(args) -> int``. Errors meant for the user (``SqueezeStudioError``)
print as one line on stderr with exit code 2 -- never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Optional, Sequence

from squeezestudio import __version__
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.limits import overridden_limits
from squeezestudio.core.printable import printable
from squeezestudio.core.progress import Cancelled
from squeezestudio.cli import (cmd_classify, cmd_compare, cmd_compress, cmd_demo, cmd_eval, cmd_export, cmd_gui,
                               cmd_inspect, cmd_plugins, cmd_screenshot, cmd_search, cmd_sensitivity, cmd_sweep)

# The command modules import only argparse at their top (the core and torch load inside
# ``run``), so building the parser stays instant.
COMMANDS: tuple[ModuleType, ...] = (
    cmd_demo, cmd_inspect, cmd_eval, cmd_classify, cmd_compress, cmd_compare, cmd_sweep, cmd_sensitivity,
    cmd_export, cmd_search, cmd_plugins, cmd_gui, cmd_screenshot,
)
EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squeezestudio",
        description="Make image classifiers smaller and see what it costs. "
                    "With no command, opens the desktop app on the bundled demo; "
                    "`squeezestudio MODEL` opens it on MODEL (as `squeezestudio gui MODEL`).")
    parser.add_argument("--version", action="version", version=f"squeezestudio {__version__}")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                        help="raise or lower a safety limit for this run, e.g. input_elements=100000000 "
                             "(repeatable; see squeezestudio/core/limits.py; or set SQUEEZESTUDIO_LIMIT_NAME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def _limit_flags(items: Sequence[str]) -> dict[str, int]:
    """``["input_elements=1e8"]`` -> ``{"input_elements": 100000000}`` (errors are one sentence)."""
    from squeezestudio.core.errors import LimitExceededError
    from squeezestudio.core.limits import parse_limit_value

    changes = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq:
            raise LimitExceededError(f"--limit takes NAME=N, such as input_elements=100000000, not {item!r}")
        changes[name.strip()] = parse_limit_value(name.strip(), value.strip())
    return changes


def command_names(parser: argparse.ArgumentParser) -> set[str]:
    """The sub-command names (and aliases) the parser knows."""
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def with_gui_command(argv: Sequence[str], commands: set[str]) -> list[str]:
    """``[MODEL, ...]`` -> ``["gui", MODEL, ...]``: a bare model path opens the app on it.

    The first word that is not a global option decides: a command name keeps
    its meaning (a file named like a command is opened with ``gui NAME``),
    anything else is a model for ``gui``. Options before it stay global.
    """
    args = list(argv)
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--limit":
            i += 2
            continue
        if word.startswith("-"):  # --limit=..., --version, --help: global options
            i += 1
            continue
        if word in commands:
            return args
        return args[:i] + ["gui"] + args[i:]
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(with_gui_command(argv, command_names(parser)))
    if not args.command:
        args = parser.parse_args([*argv, "gui"])  # the bundled demo, with the global options given
    try:
        with overridden_limits(_limit_flags(args.limit)):
            return int(args.func(args) or 0)
    except SqueezeStudioError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `squeezestudio plugins | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
