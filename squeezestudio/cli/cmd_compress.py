"""``squeezestudio compress MODEL ... -o out.sqz``: apply a recipe, report size and accuracy.

Prints the Deep-Compression-style stage table, the exact size (the byte
length of the .sqz encoding, which is the file written with ``-o``), and the
accuracy before and after, measured on ``--data``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from squeezestudio.cli.cmd_export import add_calibration_arguments
from squeezestudio.cli.common import (add_data_arguments, add_model_arguments, check_outputs, load_data_for,
                                      load_training_for,
                                      load_model_from_args, print_warnings)
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.training.retrain_defaults import RETRAIN_DEFAULTS, retrain_section
from squeezestudio.cli.latency_options import add_latency_arguments, print_latency

FIRE_KEYS = {"sr": "squeeze_ratio", "squeeze_ratio": "squeeze_ratio", "pct3x3": "pct3x3",
             "bypass": "bypass", "init": "init", "strategy": "strategy"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress", help="prune / cluster / quantize / substitute Fire modules, then write a .sqz",
        description="Compress a model with a recipe or flags, print the stage table, the exact size "
                    "and the accuracy before and after, and write the outputs asked for.")
    add_model_arguments(p)
    add_data_arguments(p)
    g = p.add_argument_group("recipe")
    g.add_argument("--recipe", help="recipe file (.yaml or .json); flags below are applied on top")
    g.add_argument("--prune", type=float, metavar="SPARSITY", help="prune this fraction of weights (e.g. 0.9)")
    g.add_argument("--threshold", type=float, help="prune weights with |w| below this")
    g.add_argument("--scope", choices=["layer", "global"], default="layer",
                   help="one sparsity per layer, or one threshold across all layers (Deep Compression)")
    g.add_argument("--cluster-bits", type=int, help="k-means weight sharing with 2^bits clusters per layer")
    g.add_argument("--quant-bits", type=int, help="uniform quantization to this many bits")
    g.add_argument("--quant-scheme", help="quantization scheme (e.g. uniform, binary, ternary, float16)")
    g.add_argument("--set", dest="options", action="append", default=[], metavar="METHOD.OPTION=VALUE",
                   help="set any method option globally, e.g. quantize.granularity=channel (repeatable)")
    g.add_argument("--layer", dest="layers", action="append", default=[], metavar="NAME:OPTS",
                   help="per-layer override, e.g. 'features.0:prune.sparsity=0.5,cluster=off' (repeatable)")
    g.add_argument("--fire", action="append", default=[], metavar="LAYER[:sr=0.125,pct3x3=0.5,bypass]",
                   help="replace a convolution by a Fire module (repeatable)")
    g.add_argument("--fire-auto", type=int, metavar="N", help="Fire-substitute the N largest kxk convolutions")
    t = p.add_argument_group("retraining")
    t.add_argument("--finetune", type=int, metavar="EPOCHS", default=0,
                   help="fine-tune this many epochs, keeping the compression")
    t.add_argument("--train-data", help="training images for --finetune and for fitting substituted layers "
                   "(default: digits' training split when --data is digits; never the evaluation data)")
    t.add_argument("--lr", type=float, default=RETRAIN_DEFAULTS.lr,
                   help=f"fine-tuning learning rate (default {RETRAIN_DEFAULTS.lr:g})")
    t.add_argument("--distill", metavar="T[,ALPHA]",
                   help="distil from the original model: temperature, weight of the match "
                        f"(default weight {RETRAIN_DEFAULTS.distill_alpha:g})")
    t.add_argument("--seed", type=int, default=RETRAIN_DEFAULTS.seed)
    o = p.add_argument_group("outputs")
    o.add_argument("-o", "--output", help="write the compressed checkpoint (.sqz)")
    o.add_argument("--dense", help="also write a dense PyTorch state_dict (.pt)")
    o.add_argument("--safetensors", help="also write dense safetensors")
    o.add_argument("--onnx", help="also write ONNX of the compressed model")
    o.add_argument("--onnx-int8", metavar="PATH",
                   help="also write int8 QDQ ONNX (activations calibrated on --calibration images) and "
                        "print its accuracy in onnxruntime")
    add_calibration_arguments(o)
    add_latency_arguments(p)
    o.add_argument("--save-recipe", help="write the recipe that reproduces this (.yaml/.json)")
    o.add_argument("--report", help="write a report (.json or .csv)")
    p.set_defaults(func=run)


def _fire_entry(text: str) -> dict[str, Any]:
    from squeezestudio.core.compression.recipe import parse_option_value

    layer, _, rest = text.partition(":")
    entry: dict[str, Any] = {"method": "fire", "layer": layer.strip()}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        name = FIRE_KEYS.get(key.strip())
        if name is None:
            raise RecipeError(f"unknown Fire option {key!r} in {text!r}; use sr, pct3x3, bypass, init, strategy")
        entry[name] = parse_option_value(value) if eq else True
    return entry


def build_recipe(args: argparse.Namespace, handle) -> Any:
    """The recipe from ``--recipe`` plus the flags (flags win)."""
    from squeezestudio.core.compression.fire import select_largest_convs
    from squeezestudio.core.compression.recipe import build_recipe_from_cli, load_recipe
    from squeezestudio.core.errors import RecipeError

    flags = build_recipe_from_cli(prune=args.prune, threshold=args.threshold, cluster_bits=args.cluster_bits,
                                  quant_bits=args.quant_bits, layers=args.layers, scope=args.scope,
                                  quant_scheme=args.quant_scheme, options=args.options)
    recipe = load_recipe(args.recipe) if args.recipe else flags
    if recipe.stages:
        if flags.methods or flags.layers or args.fire or args.fire_auto or args.finetune:
            raise RecipeError("the recipe has stages: put extra methods, Fire substitutions and retraining "
                              "into one of its stages instead of passing them as flags")
        return recipe
    if args.recipe:
        for method, opts in flags.methods.items():
            recipe.methods[method] = {**recipe.methods.get(method, {}), **opts}
        recipe.layers.update(flags.layers)
    recipe.architecture.extend(_fire_entry(t) for t in args.fire)
    if args.fire_auto:
        recipe.architecture.extend({"method": "fire", "layer": name}
                                   for name in select_largest_convs(handle.module, args.fire_auto))
    if args.finetune:
        recipe.finetune = finetune_section(args)
    return recipe


def finetune_section(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's ``finetune`` section from ``--finetune/--lr/--distill/--seed`` (the GUI writes the same)."""
    temperature = alpha = None
    if args.distill:
        try:
            t_text, _, a_text = args.distill.partition(",")
            temperature, alpha = float(t_text), (float(a_text) if a_text.strip() else None)
        except ValueError:
            raise RecipeError(f"--distill takes TEMPERATURE,ALPHA such as 4,0.7, not {args.distill!r}") from None
    section = retrain_section(args.finetune, lr=args.lr, seed=args.seed, distill_temperature=temperature,
                              distill_alpha=alpha)
    return section or {}


def _stage_table(handle: Any, before: Any, measured: Any, original_bytes: int) -> str:
    """Deep Compression's stage table: the original, then every stage's size and accuracy."""
    from squeezestudio.core.measure.stages import retraining_note, stage_table

    rows = [("original (dense float32)", None if before is None else before.top1, original_bytes, "")]
    if measured.stages:
        for record in measured.stages:
            top1 = None if record.evaluation is None else record.evaluation.top1
            rows.append((record.name, top1, record.size_bytes, retraining_note(record)))
    else:
        top1 = None if measured.evaluation is None else measured.evaluation.top1
        epochs = 0 if measured.training is None else len(measured.training.history)
        rows.append(("compressed", top1, measured.size_bytes,
                     f"{epochs} epoch(s); last epoch kept" if epochs else "none"))
    return stage_table(rows, original_bytes)


def run(args: argparse.Namespace) -> int:
    # lazy: the core imports torch (about 7 s cold); `--help` should not wait for it
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.measure.evaluation import evaluate
    from squeezestudio.core.io.exports import export
    from squeezestudio.core.compression.codec import encode_sqz
    from squeezestudio.core.compression.pipeline import compress, needs_calibration
    from squeezestudio.core.compression.recipe import Recipe
    from squeezestudio.core.measure.measure_recipe import measure_recipe, retrains
    from squeezestudio.core.measure.stages import check_stages
    from squeezestudio.core.printable import printable, printable_lines

    check_outputs(args.output, args.dense, args.safetensors, args.onnx, args.onnx_int8, args.save_recipe,
                  args.report)
    handle = load_model_from_args(args)
    print_warnings(handle)
    recipe = build_recipe(args, handle)
    registry = default_registry()
    retrain = retrains(recipe)
    check_stages(recipe, handle, registry=registry, need_data=False)  # every option checked before data loads
    data = load_data_for(handle, args.data, args=args) if args.data and args.data != "none" else None
    train, calibration = load_training_for(handle, args, data, retrain=retrain,
                                           calibrate=needs_calibration(recipe, registry))
    before = evaluate(handle.module, data, batch_size=args.batch_size) if data is not None else None
    original_bytes = len(encode_sqz(compress(handle, Recipe(), registry=registry), registry=registry))
    # The same core path as every point in the GUI: compress -> retrain -> evaluate -> exact .sqz size.
    with TerminalProgress("compressing and retraining" if retrain else "compressing") as bar:
        measured = measure_recipe(handle, recipe, data, registry=registry, train_data=train, teacher=handle.module,
                                  reference=handle.module, batch_size=args.batch_size, calibration=calibration,
                                  with_size_report=True, progress=bar)
    cm, after = measured.compressed, measured.evaluation
    if measured.training is not None and not measured.stages:
        print("fine-tuning (last epoch kept; the evaluation data chooses nothing):")
        for record in measured.training.history:
            acc = "" if record.val_top1 is None else f", held-out top-1 {record.val_top1 * 100:.2f}%"
            print(f"  epoch {record.epoch}: loss {record.train_loss:.4f}{acc}")
    print(printable_lines(measured.size_report.to_table(original_bytes)))  # its total is the encoded file's length
    print()
    print(printable_lines(_stage_table(handle, before, measured, original_bytes)))
    if before is not None and after is not None:
        name = printable(data.name)
        print(f"Top-1 on {name}: {before.top1 * 100:.2f}% before, {after.top1 * 100:.2f}% after "
              f"(agreement with the original {after.agreement * 100:.2f}%); {name} chose nothing "
              "(no epoch or setting was selected on it)")
    outputs = [("sqz", args.output), ("pt", args.dense), ("safetensors", args.safetensors),
               ("onnx", args.onnx), ("recipe", args.save_recipe)]
    if args.report:
        outputs.append(("report_csv" if args.report.endswith(".csv") else "report_json", args.report))
    for fmt, path in outputs:
        if path:
            written = export(cm, fmt, Path(path), registry=registry)
            print(f"wrote {path} ({written:,d} bytes)")
    if args.onnx_int8:
        from squeezestudio.cli.cmd_export import write_int8

        write_int8(cm, Path(args.onnx_int8), args, data)
    if args.latency:  # after the files: the numbers are printed, not added to what was written
        print_latency(cm, args)
    return 0
