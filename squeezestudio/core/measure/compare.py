"""Compare two points (or a point and the original): per-layer differences and where they disagree.

Choosing between two configurations needs more than two numbers: which layers
each one compressed and how (bytes, bits per weight, sparsity, method), their
accuracy and how often they agree, and the images on which they disagree
with both models' top-5 -- so a user can see whether the smaller model fails
on hard images or on easy ones. ``squeezestudio compare`` and the GUI's
Compare view both print :func:`compare_models`'s result.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.evaluation import predict_topk
from squeezestudio.core.measure.runtime_forward import runtime_batch_size
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

DIFF_COLUMNS = ("layer", "bytes_a", "bytes_b", "bits_per_weight_a", "bits_per_weight_b",
                "sparsity_a", "sparsity_b", "method_a", "method_b")


@dataclass(frozen=True)
class LayerState:
    """How one layer's weight is stored in one model."""

    bytes: int
    bits_per_weight: float
    sparsity: float
    method: str


@dataclass(frozen=True)
class Disagreement:
    """One image on which the two models' top-1 differ, with both top-5s ``[(class, probability)]``."""

    index: int
    label: Optional[str]
    path: Optional[str]
    top5_a: list[tuple[str, float]]
    top5_b: list[tuple[str, float]]


@dataclass
class Comparison:
    """Everything the Compare view and ``squeezestudio compare`` show."""

    name_a: str
    name_b: str
    size_a: int
    size_b: int
    layers: dict[str, tuple[Optional[LayerState], Optional[LayerState]]] = field(default_factory=dict)
    top1_a: Optional[float] = None
    top1_b: Optional[float] = None
    agreement: Optional[float] = None
    n: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    disagreement_count: int = 0

    def rows(self) -> list[list[Any]]:
        """One row per layer in :data:`DIFF_COLUMNS` order (blank where a model lacks the layer)."""
        out = []
        for layer, (a, b) in self.layers.items():
            out.append([layer, *(_cell(s, "bytes") for s in (a, b)),
                        *(_cell(s, "bits_per_weight") for s in (a, b)),
                        *(_cell(s, "sparsity") for s in (a, b)), *(_cell(s, "method") for s in (a, b))])
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(DIFF_COLUMNS)
        writer.writerows(self.rows())
        return buf.getvalue()

    def to_table(self) -> str:
        """The per-layer diff as fixed-width text, then size, accuracy and agreement."""
        header = ["layer", "bytes A", "bytes B", "bits/w A", "bits/w B", "sparsity A", "sparsity B",
                  "method A", "method B"]
        body = [[str(r[0]), f"{r[1]:,}" if r[1] != "" else "", f"{r[2]:,}" if r[2] != "" else "",
                 _fmt(r[3], "{:.2f}"), _fmt(r[4], "{:.2f}"), _fmt(r[5], "{:.1%}"), _fmt(r[6], "{:.1%}"),
                 str(r[7]), str(r[8])] for r in self.rows()]
        rows = [header] + body
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i in (0, 7, 8) else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        lines.append(f"A = {self.name_a}: {self.size_a:,} bytes" + _acc(self.top1_a))
        lines.append(f"B = {self.name_b}: {self.size_b:,} bytes" + _acc(self.top1_b))
        if self.agreement is not None:
            lines.append(f"agreement (same top-1) {self.agreement * 100:.2f}% of {self.n} images; "
                         f"they disagree on {self.disagreement_count}")
        return "\n".join(lines)


def _cell(state: Optional[LayerState], attr: str) -> Any:
    return "" if state is None else getattr(state, attr)


def _fmt(value: Any, pattern: str) -> str:
    return "" if value == "" else pattern.format(value)


def _acc(top1: Optional[float]) -> str:
    return "" if top1 is None else f", top-1 {top1 * 100:.2f}%"


def method_of(encoding: Any) -> str:
    """A short name for how a weight is stored: ``dense``, ``pruned``, ``cluster 4b``, ``quantize 8b``..."""
    if encoding is None:
        return "dense"
    pruned = getattr(encoding, "mask", None) is not None
    kind = getattr(encoding, "kind", "float32")
    base = {"float32": "", "float16": "float16", "codebook": f"cluster {encoding.bits}b",
            "affine": f"quantize {encoding.bits}b"}.get(kind, kind)
    return " + ".join(p for p in ("pruned" if pruned else "", base) if p) or "dense"


def layer_states(module: nn.Module, encodings: Optional[dict[str, Any]] = None,
                 size_report: Any = None) -> dict[str, LayerState]:
    """Every conv/linear weight's storage: bytes written, bits per weight, sparsity, method."""
    encodings = encodings or {}
    coded = {row.name: row for row in getattr(size_report, "layers", [])}
    out: dict[str, LayerState] = {}
    for name, m in module.named_modules():
        weight = getattr(m, "weight", None)
        if not name or not isinstance(weight, nn.Parameter):
            continue
        key = f"{name}.weight"
        numel = weight.numel()
        zeros = float((weight.detach() == 0).sum()) / max(numel, 1)
        row = coded.get(key)
        nbytes = int(row.coded) if row is not None else 4 * numel
        out[name] = LayerState(bytes=nbytes, bits_per_weight=8.0 * nbytes / max(numel, 1), sparsity=zeros,
                               method=method_of(encodings.get(key)))
    return out


def compare_models(a: Any, b: Any, data: Optional[ImageDataset] = None, *, names: tuple[str, str] = ("A", "B"),
                   sizes: tuple[int, int] = (0, 0), max_images: int = 48, batch_size: Optional[int] = None,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> Comparison:
    """Compare two models given as ``(module, encodings, size_report)`` triples on ``data``.

    ``sizes`` are their file sizes in bytes; ``max_images`` bounds the gallery
    of disagreeing images (the count of all disagreements is kept).
    """
    (module_a, enc_a, sizes_a), (module_b, enc_b, sizes_b) = a, b
    result = Comparison(name_a=names[0], name_b=names[1], size_a=int(sizes[0]), size_b=int(sizes[1]))
    states_a, states_b = layer_states(module_a, enc_a, sizes_a), layer_states(module_b, enc_b, sizes_b)
    for layer in list(states_a) + [n for n in states_b if n not in states_a]:
        result.layers[layer] = (states_a.get(layer), states_b.get(layer))
    if data is None or not len(data):
        return result
    classes = list(data.class_names)
    correct_a = correct_b = same = 0
    labelled = data.labels is not None
    # 256 images of 3x224x224 at once thrash memory; the evaluation's own size for this image size otherwise.
    batch_size = batch_size or runtime_batch_size(int(data.images[0].numel()))
    for start in range(0, len(data), batch_size):
        check(cancel)
        report(progress, start / len(data), f"comparing images {start}..")
        images = data.images[start:start + batch_size]
        pa, ia = predict_topk(module_a, images)
        pb, ib = predict_topk(module_b, images)
        agree = ia[:, 0] == ib[:, 0]
        same += int(agree.sum())
        if labelled:
            y = data.labels[start:start + batch_size]
            correct_a += int((ia[:, 0] == y).sum())
            correct_b += int((ib[:, 0] == y).sum())
        for j in torch.nonzero(~agree).flatten().tolist():
            result.disagreement_count += 1
            if len(result.disagreements) >= max_images:
                continue
            index = start + j
            label = classes[int(data.labels[index])] if labelled else None
            path = data.paths[index] if data.paths is not None else None
            result.disagreements.append(Disagreement(
                index=index, label=label, path=path,
                top5_a=[(_name(classes, int(c)), float(p)) for p, c in zip(pa[j], ia[j])],
                top5_b=[(_name(classes, int(c)), float(p)) for p, c in zip(pb[j], ib[j])]))
    result.n = len(data)
    result.agreement = same / len(data)
    if labelled:
        result.top1_a, result.top1_b = correct_a / len(data), correct_b / len(data)
    report(progress, 1.0, "compared")
    return result


def _name(classes: list[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)
