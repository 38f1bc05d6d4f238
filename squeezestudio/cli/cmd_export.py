"""``squeezestudio export MODEL.sqz --to pt|safetensors|onnx``: convert a compressed checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezestudio.core.io.export_formats import EXPORT_FORMATS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="convert a .sqz to a dense checkpoint, safetensors or ONNX",
                       description="Decode a compressed checkpoint and write it in another format.")
    p.add_argument("model", help="a .sqz file")
    p.add_argument("--to", required=True, choices=[key for key in EXPORT_FORMATS if key != "sqz"],
                   help="output format")
    p.add_argument("-o", "--output", help="output file (default: the input name with the new suffix)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.core.compression.codec import load_sqz
    from squeezestudio.core.atomic_write import check_output_path
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.exports import export

    out = Path(args.output) if args.output else Path(args.model).with_name(Path(args.model).stem + EXPORT_FORMATS[args.to].suffix)
    check_output_path(out)
    registry = default_registry()
    cm = load_sqz(args.model, registry=registry)
    written = export(cm, args.to, out, registry=registry)
    print(f"wrote {out} ({written:,d} bytes)")
    return 0
