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
                    "With no command, opens the desktop app on the bundled demo.")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if not args.command:
        return cmd_gui.run(argparse.Namespace(model=None, data=None, trust=False, arch=None))
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
