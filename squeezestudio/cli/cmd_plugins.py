"""``squeezestudio plugins``: the compression methods found, with versions and load errors."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list compression methods (built-in and plugins) and load errors",
                       description="List every compression method: built-in ones, those installed "
                                   "through the 'squeezestudio.methods' entry point, and those in the "
                                   "repository's plugins/ folder, with any plugin that failed to load.")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each method's options")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.core.compression.config import config_params
    from squeezestudio.core.compression.registry import default_registry

    registry = default_registry()
    origins = getattr(registry, "origins", {})
    print(f"{'method':14s} {'source':28s} description")
    for method in registry.methods():
        origin = origins.get(method.name, "built-in")
        print(f"{method.name:14s} {origin[:28]:28s} {method.description}")
        if args.verbose:
            for spec in config_params(method.config_class):
                rng = f" [{spec.minimum}..{spec.maximum}]" if spec.minimum is not None else ""
                choices = f" one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
                print(f"{'':16s}{spec.name} = {spec.default!r}{rng}{choices}: {spec.help}")
    errors = list(getattr(registry, "errors", []))
    if errors:
        print("\nplugins that failed to load:")
        for name, message in errors:
            print(f"  {name}: {message}")
    return 0
