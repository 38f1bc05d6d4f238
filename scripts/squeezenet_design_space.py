"""The SqueezeNet design-space sweep (Iandola et al. 2016, Figure 3) on the digits.

SqueezeNet's microarchitecture has two knobs per Fire module with ``e``
expand filters: the squeeze ratio ``SR`` (squeeze filters = SR * e) and
``pct3x3`` (the share of the expand filters that are 3x3; the rest are 1x1).
The paper sweeps each with the other fixed (SR at pct3x3 = 0.5; pct3x3 at
SR = 0.5) and plots accuracy against it with the model size at each point.

Here the network is the bundled demo architecture, ``SqueezeNetMini``
(stem conv 3x3, six Fire modules with 64/64/128/128/192/192 expand filters,
1x1 classifier conv, global average pooling), with its ``squeeze_ratio`` and
``pct3x3`` knobs set per point. Each setting is trained from the same seed
for a few epochs on the digits at ``--size`` (16x16 by default, to fit the
whole sweep in a few minutes on two cores; 32 is the demo's size), each for
exactly ``--epochs`` epochs (a budget in epochs, never seconds, so every
machine gives the same table); the epoch kept is the best on a held-out 10%
of the TRAINING split, never on the validation split. For each it records the
exact .sqz length of the dense model (the architecture is stored as a
graph, no weight compression) and the validation top-1, writes a CSV and a
PNG with two panels like the paper's figure (rendered offscreen with
pyqtgraph), and prints the table. Whole run: a few minutes on two cores.

    .venv/bin/python scripts/squeezenet_design_space.py [--epochs 6] [--size 16] [--out out/design_space]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.measure.stages import split_holdout
from squeezestudio.core.model.handle import DIGIT_CLASS_NAMES, InputSpec, ModelHandle
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.zoo.squeezenet import SqueezeNetMini
from squeezestudio.core.compression.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
SR_VALUES = (0.125, 0.25, 0.5, 0.75, 1.0)
PCT_VALUES = (0.01, 0.25, 0.5, 0.75, 0.99)


def build(sr: float, pct: float) -> nn.Module:
    """The demo architecture with the two microarchitecture knobs set."""
    return SqueezeNetMini(num_classes=10, in_channels=1, squeeze_ratio=sr, pct3x3=pct)


def handle_of(model: nn.Module, name: str, size: int) -> ModelHandle:
    """A handle whose architecture is a traced graph, so the dense model has an exact .sqz size."""
    return ModelHandle(module=model, name=name, input_spec=InputSpec(1, size, size, (0.5,), (0.5,)),
                       class_names=list(DIGIT_CLASS_NAMES), source_format="python",
                       architecture=describe_architecture(model))


def run_one(sr: float, pct: float, train: ImageDataset, val: ImageDataset, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    model = build(sr, pct)
    fit, held = split_holdout(train, 0.1, args.seed)  # the epoch is chosen here, never on ``val``
    started = time.perf_counter()
    result = train_classifier(model, fit, held, TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=64,
                                                            seed=args.seed, shift_augment=1))
    registry = default_registry()
    size = len(encode_sqz(compress(handle_of(model, f"squeezenet_mini_sr{sr}_pct{pct}", args.size), Recipe(),
                                   registry=registry), registry=registry))
    return {"SR": sr, "pct3x3": pct, "parameters": sum(p.numel() for p in model.parameters()),
            "sqz_bytes": size, "top1": 100.0 * evaluate(model, val).top1, "epochs": len(result.history),
            "kept_epoch": result.best_epoch, "seconds": round(time.perf_counter() - started, 1)}


def write_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def write_png(sr_rows: list[dict], pct_rows: list[dict], path: Path) -> None:
    """Two panels like the paper's Figure 3: top-1 against the knob, each point labelled with its size."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtCore import QBuffer, QIODevice

    app = pg.mkQApp()
    pg.setConfigOptions(background="w", foreground="k", antialias=True)
    win = pg.GraphicsLayoutWidget()
    win.resize(1100, 460)
    panels = (("(a) squeeze ratio SR (pct3x3 = 0.5)", "SR", sr_rows),
              ("(b) pct3x3 (SR = 0.5)", "pct3x3", pct_rows))
    for title, key, rows in panels:
        plot = win.addPlot(title=title)
        xs = [r[key] for r in rows]
        ys = [r["top1"] for r in rows]
        plot.plot(xs, ys, pen=pg.mkPen("b", width=2), symbol="o", symbolBrush="b")
        plot.setLabel("bottom", key)
        plot.setLabel("left", "top-1 accuracy (%)")
        low, high = min(ys), max(ys)
        plot.setYRange(low - 0.15 * (high - low + 1), high + 0.25 * (high - low + 1))
        plot.setXRange(-0.05, 1.05)
        for r in rows:
            label = pg.TextItem(f"{r['sqz_bytes'] / 1024:.0f} KiB", color="k", anchor=(0.5, 1.3))
            label.setPos(r[key], r["top1"])
            plot.addItem(label)
    app.processEvents()
    image = win.grab().toImage()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    atomic_write_bytes(path, bytes(buffer.data()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per setting")
    parser.add_argument("--size", type=int, default=16, help="digit image size (16 or more; the demo uses 32)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "design_space", help="folder for CSV and PNG")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    spec = PreprocessSpec(channels=1, height=args.size, width=args.size, mean=(0.5,), std=(0.5,))
    train, val = load_digits_split("train", spec), load_digits_split("val", spec)
    cache: dict[tuple[float, float], dict] = {}
    sweeps = [("SR", [(sr, 0.5) for sr in SR_VALUES]), ("pct3x3", [(0.5, p) for p in PCT_VALUES])]
    print(f"{'sweep':<8}{'SR':>7}{'pct3x3':>8}{'params':>9}{'.sqz B':>10}{'top-1 %':>9}{'kept':>6}{'s':>6}")
    results: dict[str, list[dict]] = {}
    for sweep, settings in sweeps:
        results[sweep] = []
        for sr, pct in settings:
            if (sr, pct) not in cache:
                cache[(sr, pct)] = run_one(sr, pct, train, val, args)
            r = cache[(sr, pct)]
            results[sweep].append(r)
            print(f"{sweep:<8}{sr:>7.3f}{pct:>8.2f}{r['parameters']:>9,}{r['sqz_bytes']:>10,}{r['top1']:>9.2f}"
                  f"{r['kept_epoch'] or 0:>3}/{r['epochs']:<2}{r['seconds']:>6.0f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [{"sweep": sweep, **r} for sweep, rs in results.items() for r in rs]
    write_csv(rows, args.out / "squeezenet_design_space.csv")
    write_png(results["SR"], results["pct3x3"], args.out / "squeezenet_design_space.png")
    print(f"(kept = the epoch best on 10% of the training split held out)  wrote {args.out / 'squeezenet_design_space.csv'} "
          f"and {args.out / 'squeezenet_design_space.png'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
