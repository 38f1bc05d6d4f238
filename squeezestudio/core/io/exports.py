"""Every export format, behind one table used by the CLI and the GUI's export dialog.

Each exporter writes atomically and returns the number of bytes written, which
is what the user is shown (the file's real length, not an estimate).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.errors import ExportError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: a key (CLI/GUI), a label, a file suffix and its writer."""

    key: str
    label: str
    suffix: str
    write: Callable[..., int]
    needs_calibration: bool = False  # written from calibration images: ``write(cm, path, calibration=..., method=...)``


def _write_sqz(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.compression.codec import save_sqz

    return save_sqz(cm, path)


def _write_pt(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.io.loading import save_state_dict

    return save_state_dict(cm.handle, path)


def _write_safetensors(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.io.loading import save_safetensors

    return save_safetensors(cm.handle, path)


def _write_onnx(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.io.export_onnx import export_onnx

    return export_onnx(cm.handle, path)


def _write_onnx_int8(cm: CompressedModel, path: Path, *, calibration: Any = None, method: str = "minmax") -> int:
    from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8

    if calibration is None:
        raise ExportError("the int8 ONNX export needs calibration images; open training data (or give "
                          "--calibration DATA) so its activation ranges can be measured")
    return export_onnx_int8(cm, path, calibration, method=method).size_bytes


def _write_recipe(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.compression.recipe import recipe_from_dict, save_recipe

    return save_recipe(recipe_from_dict(cm.recipe), path)


def build_report(cm: CompressedModel) -> dict[str, Any]:
    """Sizes per stage and layer, measured metrics, recipe and provenance, as plain data."""
    from squeezestudio.core.compression.codec import size_report

    return {
        "model": cm.handle.name,
        "size": size_report(cm).to_dict(),
        "metrics": dict(cm.metrics),
        "recipe": cm.recipe,
        "provenance": cm.provenance,
    }


def _write_report_json(cm: CompressedModel, path: Path) -> int:
    return atomic_write_bytes(path, json.dumps(build_report(cm), indent=2, default=str).encode())


def _write_report_csv(cm: CompressedModel, path: Path) -> int:
    from squeezestudio.core.compression.codec import size_report

    text = size_report(cm).to_csv()
    if cm.metrics:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([])
        writer.writerow(["metric", "value"])
        for key, value in sorted(cm.metrics.items()):
            writer.writerow([key, value])
        text += buf.getvalue()
    return atomic_write_bytes(path, text.encode())


EXPORT_FORMATS: dict[str, ExportFormat] = {f.key: f for f in (
    ExportFormat("sqz", "Compressed checkpoint (.sqz)", ".sqz", _write_sqz),
    ExportFormat("pt", "Dense PyTorch state_dict (.pt)", ".pt", _write_pt),
    ExportFormat("safetensors", "Dense safetensors", ".safetensors", _write_safetensors),
    ExportFormat("onnx", "ONNX", ".onnx", _write_onnx),
    ExportFormat("onnx-int8", "ONNX int8 (QDQ, runs on int8 kernels)", ".int8.onnx", _write_onnx_int8,
                 needs_calibration=True),
    ExportFormat("recipe", "Recipe (.yaml)", ".yaml", _write_recipe),
    ExportFormat("report_json", "Report (.json)", ".json", _write_report_json),
    ExportFormat("report_csv", "Report (.csv)", ".csv", _write_report_csv),
)}


def format_for_path(path: PathLike) -> Optional[str]:
    """The export format a file name implies (``.yml`` counts as a recipe), or None."""
    suffix = Path(path).suffix.lower()
    if Path(path).name.lower().endswith(".int8.onnx"):
        return "onnx-int8"
    if suffix == ".yml":
        return "recipe"
    for key, fmt in EXPORT_FORMATS.items():
        if fmt.suffix == suffix:
            return key
    return None


def export(cm: CompressedModel, fmt: str, path: PathLike, *, calibration: Any = None,
           calibration_method: str = "minmax") -> int:
    """Write ``cm`` as ``fmt`` to ``path`` atomically; returns the bytes written.

    ``calibration`` (preprocessed images) and ``calibration_method`` are used
    by the formats that quantize activations (``needs_calibration``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    chosen = EXPORT_FORMATS[fmt]
    if chosen.needs_calibration:
        return chosen.write(cm, Path(path), calibration=calibration, method=calibration_method)
    return chosen.write(cm, Path(path))
