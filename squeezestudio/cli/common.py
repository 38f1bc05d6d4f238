"""Argument groups shared by several commands: which model, which data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Optional

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
    parser.add_argument("--labels", metavar="FILE",
                        help="class names: one per line, or a JSON list (stored in .sqz files written)")
    add_preprocess_arguments(parser)


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    """How images become model inputs; each flag overrides what the model file says."""
    g = parser.add_argument_group(
        "preprocessing", "how an image becomes the model's input; defaults come from the model file "
                         "(ONNX input shape and metadata, the zoo, a .sqz), flags and --preprocess win")
    g.add_argument("--preprocess", metavar="FILE.yaml",
                   help="YAML with any of: input_size, resize, crop, mean, std, pixel_scale, bgr, grayscale, layout")
    g.add_argument("--input-size", metavar="H,W", help="the model's input size (one number: square)")
    g.add_argument("--resize", metavar="N|H,W",
                   help="N: scale the shorter side to N; H,W: resize to exactly HxW (then center crop to the input size)")
    g.add_argument("--crop", metavar="N|H,W", help="center crop to this size (the size the model sees)")
    g.add_argument("--mean", metavar="A[,B,C]", help="per-channel mean subtracted (one value broadcasts)")
    g.add_argument("--std", metavar="A[,B,C]", help="per-channel std divided by (one value broadcasts)")
    g.add_argument("--pixel-scale", metavar="1|255", help="pixels in 0..1 (1, default) or 0..255 (255) before mean/std")
    g.add_argument("--bgr", action="store_true", default=None, help="feed channels in BGR order (OpenCV/Caffe models)")
    g.add_argument("--grayscale", action="store_true", default=None, help="convert images to gray first")
    g.add_argument("--layout", choices=["nchw", "nhwc"], help="the ONNX input layout (default: from its shape)")


def preprocess_options_from_args(args: argparse.Namespace) -> dict:
    """The preprocessing options of ``--preprocess FILE`` overridden by the individual flags."""
    from squeezestudio.core.model.input_spec import merged_options, parse_preprocess_options, read_preprocess_file

    from_file = read_preprocess_file(args.preprocess) if getattr(args, "preprocess", None) else {}
    flags = {key: getattr(args, key, None) for key in ("input_size", "resize", "crop", "mean", "std",
                                                      "pixel_scale", "bgr", "grayscale", "layout")}
    return merged_options(from_file, parse_preprocess_options(flags, "the command-line flags"))


def add_data_arguments(parser: argparse.ArgumentParser, default: str = "digits") -> None:
    parser.add_argument("--data", default=default,
                        help="validation data: 'digits' (built in), an image folder with one sub-folder per "
                             "class, a folder of loose images (unlabelled: agreement with the original and "
                             "output divergence are measured, not accuracy), a CSV of path,label, or 'none' "
                             f"(size only, where the command allows it) (default: {default})")
    parser.add_argument("--limit", dest="subset", type=int, metavar="N",
                        help="evaluate a fixed, seeded subset of N images (classes in proportion); the safety "
                             "limits are `squeezestudio --limit NAME=N COMMAND`")
    parser.add_argument("--follow-links", action="store_true",
                        help="use images and class folders whose symbolic links lead out of the data folder "
                             "(not followed by default)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="evaluation batch size (default: chosen by measuring)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where evaluation runs: auto uses a CUDA GPU when torch sees one (default auto)")


def load_model_from_args(args: argparse.Namespace) -> "ModelHandle":
    # lazy, as in every command: the core imports torch (about 7 s cold here), and
    # `squeezestudio --help` or an argument error should not wait for it.
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.demo_files import demo_model_path
    from squeezestudio.core.io.loading import load_model

    from squeezestudio.core.model.labels import read_labels_file

    from squeezestudio.core.devices import set_default_device

    if getattr(args, "device", None):
        set_default_device(args.device)
    path = args.model if getattr(args, "model", None) else str(demo_model_path())
    labels = read_labels_file(args.labels) if getattr(args, "labels", None) else None
    return load_model(path, arch=getattr(args, "arch", None), trust=getattr(args, "trust", False),
                      weights=getattr(args, "weights", None), registry=default_registry(), class_names=labels,
                      preprocess=preprocess_options_from_args(args))


def load_data_for(handle: "ModelHandle", source: str, label: str = "loading data",
                  args: "argparse.Namespace | None" = None, follow_links: Optional[bool] = None) -> "ImageDataset":
    """The data set preprocessed the way the model expects, classes matched to the model's.

    ``args`` applies ``--limit`` and ``--follow-links``; ``follow_links``
    alone (for training data, which ``--limit`` does not cut) overrides the latter.
    """
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.data.folders import class_names_from_data, load_dataset, match_classes
    from squeezestudio.core.data.subsets import limited

    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    if follow_links is None:
        follow_links = bool(getattr(args, "follow_links", False))
    with TerminalProgress(label) as bar:
        data = load_dataset(source, spec, progress=bar, max_classes=len(handle.class_names),
                            follow_links=follow_links)
    from squeezestudio.core.printable import printable

    for notice in data.notices:
        print(f"note: {printable(notice)}")
    for skipped in data.skipped[:10]:
        print(f"skipped {printable(skipped.path)}: {printable(skipped.reason)}")
    if len(data.skipped) > 10:
        print(f"... and {len(data.skipped) - 10} more files skipped")
    if getattr(args, "subset", None):
        data = limited(data, args.subset)
    names = class_names_from_data(handle.class_names, data)
    if names is not None:
        handle.class_names = names  # the model had none: the folders name its classes
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


def load_training_for(handle: "ModelHandle", args: "argparse.Namespace", data: "ImageDataset | None", *,
                      retrain: bool, calibrate: bool) -> "tuple[ImageDataset | None, Any]":
    """``(training set, calibration images)`` for recipes that retrain and/or need calibration images.

    The training set is digits' training split for ``--data digits``, else ``--train-data``; retraining
    without one is refused (the evaluation data never trains). Calibration images come from the training
    set when there is one, else from the evaluation data (see ``core/data/calibration.py``).
    """
    from squeezestudio.core.data.calibration import calibration_images, training_source
    from squeezestudio.core.errors import DataError

    source = training_source(args.data, args.train_data)
    if retrain and source is None:
        raise DataError("retraining needs training data apart from the evaluation data; pass --train-data")
    needed = retrain or (calibrate and source is not None)
    train = None
    if needed and source is not None:
        train = load_data_for(handle, source, "loading training data",
                              follow_links=bool(getattr(args, "follow_links", False)))
    return train, (calibration_images(train, data) if calibrate else None)

