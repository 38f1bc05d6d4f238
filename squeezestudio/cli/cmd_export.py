"""``squeezestudio export MODEL.sqz --to pt|safetensors|onnx|onnx-int8|...``: convert a compressed checkpoint.

``--to onnx-int8`` calibrates activations on ``--calibration`` images and,
with ``--data``, prints the accuracy of the written file run in onnxruntime
beside the ``.sqz``'s, the float ONNX's size and the int8 kernels
onnxruntime runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.core.io.export_formats import CALIBRATION_METHODS, EXPORT_FORMATS

DEFAULT_CALIBRATION = "digits:train"


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """``--calibration DATA`` and ``--calibration-method`` (shared with ``compress --onnx-int8``)."""
    parser.add_argument("--calibration", default=DEFAULT_CALIBRATION, metavar="DATA",
                        help="images the int8 activation ranges are measured on: a folder, a CSV list or "
                             f"digits:train (default: {DEFAULT_CALIBRATION}, the demo's training split; use "
                             "your own training images for your own model, never the evaluation set)")
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax",
                        help="how activation ranges are chosen from the calibration images (default: minmax)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="convert a .sqz to a dense checkpoint, safetensors, ONNX or int8 ONNX",
                       description="Decode a compressed checkpoint and write it in another format.")
    p.add_argument("model", help="a .sqz file")
    p.add_argument("--to", required=True, choices=[key for key in EXPORT_FORMATS if key != "sqz"],
                   help="output format")
    p.add_argument("-o", "--output", help="output file (default: the input name with the new suffix)")
    add_calibration_arguments(p)
    p.add_argument("--data", help="with onnx-int8: measure the written file in onnxruntime on this data "
                                  "(e.g. digits) and print it beside the .sqz's accuracy")
    p.set_defaults(func=run)


def calibration_images(handle: Any, source: str) -> Any:
    """The calibration images, preprocessed the way the model expects (labels are not needed)."""
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.data.folders import load_dataset
    from squeezestudio.core.io.export_onnx_int8 import MAX_CALIBRATION_IMAGES

    with TerminalProgress("loading calibration images") as bar:
        data = load_dataset(source, PreprocessSpec.from_input_spec(handle.input_spec), split="train",
                            progress=bar)
    return data.images[:MAX_CALIBRATION_IMAGES]


def write_int8(cm: Any, out: Path, args: argparse.Namespace, data: Any = None) -> int:
    """Write the int8 ONNX, then print its size against the float ONNX, its kernels and its accuracy."""
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8, int8_kernel_ops
    from squeezestudio.core.measure.evaluation import evaluate
    from squeezestudio.core.measure.onnx_evaluation import evaluate_onnx

    images = calibration_images(cm.handle, args.calibration)
    with TerminalProgress("writing int8 ONNX") as bar:
        result = export_onnx_int8(cm, out, images, method=args.calibration_method, progress=bar)
    print(f"wrote {out} ({result.size_bytes:,d} bytes; float ONNX {result.float_size_bytes:,d} bytes, "
          f"{result.ratio:.3f}x)")
    kernels = int8_kernel_ops(result.data)
    print("onnxruntime int8 kernels: " + (", ".join(f"{k} x{v}" for k, v in sorted(kernels.items())) or "none"))
    print(f"weights: {len(result.exact_layers)} layer(s) with the model's own 8-bit values, "
          f"{len(result.rounded_layers)} clustered layer(s) rounded once"
          + (f" (largest error {max(result.rounded_layers.values()):.2g})" if result.rounded_layers else "")
          + f", {len(result.quantized_layers)} float layer(s) quantized; activations: {result.method} on "
          f"{result.calibration_images} images")
    if data is not None:
        own = evaluate(cm.handle.module, data)
        int8 = evaluate_onnx(out, data, reference=cm.handle.module, handle=cm.handle)
        print(f"Top-1 on {data.name}: .sqz {own.top1 * 100:.2f}%, int8 ONNX in onnxruntime "
              f"{int8.top1 * 100:.2f}% ({(int8.top1 - own.top1) * 100:+.2f} points; agreement "
              f"{int8.agreement * 100:.2f}%)")
    return result.size_bytes


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.cli.common import load_data_for
    from squeezestudio.core.compression.codec import load_sqz
    from squeezestudio.core.atomic_write import check_output_path
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.exports import export

    out = Path(args.output) if args.output else Path(args.model).with_name(Path(args.model).stem + EXPORT_FORMATS[args.to].suffix)
    check_output_path(out)
    registry = default_registry()
    cm = load_sqz(args.model, registry=registry)
    if args.to == "onnx-int8":
        data = load_data_for(cm.handle, args.data) if args.data else None
        write_int8(cm, out, args, data)
        return 0
    written = export(cm, args.to, out, registry=registry)
    print(f"wrote {out} ({written:,d} bytes)")
    return 0
