"""The layer table: what each parameterised module holds and costs.

Before choosing what to compress, the user needs to see where the parameters
and the compute are. :func:`inspect_model` lists every module that owns
parameters directly (convolutions, linear layers, norms, and any custom
module with its own weights) with its parameter count, non-zeros, dense
float32 size and multiply-accumulates at the model's input size.

MACs are measured with forward hooks on one example input:

* ``Conv1d/2d/3d``: output elements x ``in_channels / groups`` x kernel size;
* ``ConvTranspose*``: input elements x ``out_channels / groups`` x kernel size;
* ``Linear``: output elements x ``in_features`` (``in x out`` per example);
* ``Bilinear``: output elements x ``in1 x in2``;
* normalisation layers, embeddings, and modules without parameters (pools,
  activations) count 0: they are a rounding error next to the layers above;
* any other module type with parameters has unknown MACs (``None``).

A module the forward pass never reaches counts 0 MACs. If the forward pass
fails at the model's input size, every MAC value is ``None`` and the report
carries a warning instead of raising.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.model.handle import ModelHandle

_ZERO_MAC_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
    nn.Embedding, nn.EmbeddingBag, nn.PReLU,
)
ROOT_NAME = "(model)"


@dataclass
class LayerStats:
    """One row of the layer table (parameters owned directly by one module)."""

    name: str
    type: str
    weight_shape: Optional[tuple[int, ...]]
    params: int
    nonzeros: int
    macs: Optional[int]
    dense_bytes: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weight_shape"] = None if self.weight_shape is None else list(self.weight_shape)
        return d


@dataclass
class ModelReport:
    """Per-layer rows and whole-model totals for one model."""

    model_name: str
    input_shape: tuple[int, ...]
    layers: list[LayerStats]
    total_params: int
    total_nonzeros: int
    total_macs: Optional[int]
    total_dense_bytes: int
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """The layer rows as plain dicts (for the GUI table and the CLI)."""
        return [layer.to_dict() for layer in self.layers]

    def totals(self) -> dict[str, Any]:
        return {"params": self.total_params, "nonzeros": self.total_nonzeros,
                "macs": self.total_macs, "dense_bytes": self.total_dense_bytes}

    def to_json(self) -> str:
        """Stable JSON: fixed key order, one object per layer."""
        return json.dumps({"model": self.model_name, "input_shape": list(self.input_shape),
                           "layers": self.rows(), "totals": self.totals(),
                           "warnings": list(self.warnings)}, indent=2)

    def to_csv(self) -> str:
        """One CSV row per layer plus a ``TOTAL`` row; the shape is written like ``64x3x3x3``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["name", "type", "weight_shape", "params", "nonzeros", "macs", "dense_bytes"])
        for r in self.layers:
            writer.writerow([r.name, r.type, _shape_text(r.weight_shape), r.params, r.nonzeros,
                             "" if r.macs is None else r.macs, r.dense_bytes])
        writer.writerow(["TOTAL", "", "", self.total_params, self.total_nonzeros,
                         "" if self.total_macs is None else self.total_macs, self.total_dense_bytes])
        return buf.getvalue()

    def to_table(self) -> str:
        """An aligned text table with thousands separators and a totals row."""
        header = ["Layer", "Type", "Weight shape", "Params", "Nonzeros", "MACs", "Dense bytes"]
        body = [[r.name, r.type, _shape_text(r.weight_shape), f"{r.params:,}", f"{r.nonzeros:,}",
                 _count_text(r.macs), f"{r.dense_bytes:,}"] for r in self.layers]
        total = ["TOTAL", "", "", f"{self.total_params:,}", f"{self.total_nonzeros:,}",
                 _count_text(self.total_macs), f"{self.total_dense_bytes:,}"]
        widths = [max(len(row[i]) for row in [header, *body, total]) for i in range(len(header))]
        numeric = [False, False, False, True, True, True, True]

        def line(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if num else c.ljust(w)
                             for c, w, num in zip(cells, widths, numeric)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        lines = [line(header), rule, *(line(b) for b in body), rule, line(total)]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _shape_text(shape: Optional[tuple[int, ...]]) -> str:
    return "" if shape is None else "x".join(str(s) for s in shape)


def _count_text(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"


def layer_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Optional[int]:
    """MACs of one call of ``module`` per example (batch of 1), or None for unknown types."""
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        x = inputs[0]
        kernel = math.prod(module.kernel_size)
        return int(x.numel() // x.shape[0] * (module.out_channels // module.groups) * kernel)
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        return int(out.numel() // out.shape[0] * (module.in_channels // module.groups) * kernel)
    if isinstance(module, nn.Linear):
        return int(out.numel() // out.shape[0] * module.in_features)
    if isinstance(module, nn.Bilinear):
        return int(out.numel() // out.shape[0] * module.in1_features * module.in2_features)
    if isinstance(module, _ZERO_MAC_TYPES):
        return 0
    return None


def _measure_macs(model: nn.Module, owners: dict[str, nn.Module], example: torch.Tensor,
                  warnings: list[str]) -> Optional[dict[str, Optional[int]]]:
    """Run one forward pass with hooks; MACs per owner name, or None if the pass failed."""
    macs: dict[str, Optional[int]] = {name: 0 for name in owners}
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            value = layer_macs(module, inputs, output)
            prev = macs[name]
            macs[name] = None if value is None or prev is None else prev + value
        return hook

    flags = [(m, m.training) for m in model.modules()]
    try:
        for name, module in owners.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        model.eval()
        with torch.inference_mode():
            model(example)
    except Exception as exc:  # any user model may fail in any way; report, never crash
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.append(f"MACs not measured: the model failed on an input of shape "
                        f"{tuple(example.shape)} ({type(exc).__name__}: {reason})")
        return None
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags:
            m.training = flag
    return macs


def inspect_model(handle: ModelHandle) -> ModelReport:
    """The layer table of ``handle.module`` at ``handle.input_spec``'s input size."""
    model = handle.module
    seen: set[int] = set()
    owners: dict[str, nn.Module] = {}
    owned: dict[str, list[torch.Tensor]] = {}
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        if not params:
            continue
        seen.update(id(p) for p in params)
        key = name or ROOT_NAME
        owners[key] = module
        owned[key] = params
    warnings: list[str] = []
    example = handle.input_spec.example(1)
    device_dtype = next(((p.device, p.dtype) for p in model.parameters() if p.is_floating_point()), None)
    if device_dtype is not None:
        example = example.to(*device_dtype)
    macs = _measure_macs(model, owners, example, warnings)
    layers = []
    for key, module in owners.items():
        params = owned[key]
        weight = getattr(module, "weight", None)
        shape_src = weight if isinstance(weight, torch.Tensor) and any(weight is p for p in params) else params[0]
        count = sum(p.numel() for p in params)
        layers.append(LayerStats(
            name=key, type=type(module).__name__, weight_shape=tuple(shape_src.shape), params=count,
            nonzeros=sum(int(torch.count_nonzero(p.detach())) for p in params),
            macs=None if macs is None else macs[key], dense_bytes=4 * count))
    all_params = list(model.parameters())  # deduplicated by torch, includes parameters of any module
    total_params = sum(p.numel() for p in all_params)
    if macs is not None and any(layer.macs is None for layer in layers):
        unknown = [layer.name for layer in layers if layer.macs is None]
        warnings.append(f"MACs unknown for {len(unknown)} layer(s) of unsupported type "
                        f"(first: {unknown[0]}); the total counts the others")
    return ModelReport(
        model_name=handle.name, input_shape=tuple(example.shape[1:]), layers=layers,
        total_params=total_params,
        total_nonzeros=sum(int(torch.count_nonzero(p.detach())) for p in all_params),
        total_macs=None if macs is None else sum(v for v in macs.values() if v is not None),
        total_dense_bytes=4 * total_params, warnings=warnings)
