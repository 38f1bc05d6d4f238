"""Argument groups shared by several commands: which model, which data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from squeezestudio.core.data.dataset import ImageDataset
    from squeezestudio.core.model.handle import ModelHandle


def add_model_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """MODEL plus the flags that say how to read it."""
    help_text = ("model file: .pt/.pth/.bin state_dict, .safetensors, .onnx, .sqz, a pickled "
                 "module or TorchScript (with --trust), or model.py:factory (with --trust)")
    if optional:
        parser.add_argument("model", nargs="?", help=help_text + "; default: the bundled demo")
    else:
        parser.add_argument("model", help=help_text)
    parser.add_argument("--arch", help="zoo architecture for a bare state_dict (e.g. squeezenet1_1)")
    parser.add_argument("--weights", help="weights file for a model.py:factory model")
    parser.add_argument("--trust", action="store_true",
                        help="allow loading files that can run code (pickled modules, TorchScript, "
                             "Python model files); only for files from people you trust")


def add_data_arguments(parser: argparse.ArgumentParser, default: str = "digits") -> None:
    parser.add_argument("--data", default=default,
                        help="validation data: 'digits' (built in), an image folder with one "
                             f"sub-folder per class, or a CSV of path,label (default: {default})")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")


def load_model_from_args(args: argparse.Namespace) -> "ModelHandle":
    # lazy, as in every command: the core imports torch (about 7 s cold here), and
    # `squeezestudio --help` or an argument error should not wait for it.
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.demo_files import demo_model_path
    from squeezestudio.core.io.loading import load_model

    path = args.model if getattr(args, "model", None) else str(demo_model_path())
    return load_model(path, arch=getattr(args, "arch", None), trust=getattr(args, "trust", False),
                      weights=getattr(args, "weights", None), registry=default_registry())


def load_data_for(handle: "ModelHandle", source: str, label: str = "loading data") -> "ImageDataset":
    """The data set preprocessed the way the model expects, classes matched to the model's."""
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.data.folders import load_dataset, match_classes

    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    with TerminalProgress(label) as bar:
        data = load_dataset(source, spec, progress=bar, max_classes=len(handle.class_names))
    from squeezestudio.core.printable import printable

    for skipped in data.skipped[:10]:
        print(f"skipped {printable(skipped.path)}: {printable(skipped.reason)}")
    if len(data.skipped) > 10:
        print(f"... and {len(data.skipped) - 10} more files skipped")
    return match_classes(data, handle.class_names)


def print_warnings(handle: "ModelHandle") -> None:
    from squeezestudio.core.printable import printable

    for warning in handle.warnings:
        print(f"warning: {printable(warning)}")


def check_outputs(*paths: Optional[str]) -> None:
    """Refuse unusable output paths before any work (a missing folder, a device, a FIFO, a symlink)."""
    from squeezestudio.core.atomic_write import check_output_path

    for path in paths:
        if path:
            check_output_path(path)
