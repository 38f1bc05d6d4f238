"""The writer of every export format in :data:`EXPORT_FORMATS` (the CLI and the GUI call :func:`export`).

Each exporter writes atomically and returns the number of bytes written, which
is what the user is shown (the file's real length, not an estimate).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.codec import save_sqz, size_report
from squeezestudio.core.compression.recipe import recipe_from_dict, save_recipe
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.export_formats import EXPORT_FORMATS, ExportFormat, format_for_path  # noqa: F401 - re-exported
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8
from squeezestudio.core.io.loading import save_safetensors, save_state_dict

PathLike = Union[str, Path]


def _write_sqz(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return save_sqz(cm, path, registry=registry)


def _write_pt(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return save_state_dict(cm.handle, path)


def _write_safetensors(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return save_safetensors(cm.handle, path)


def _write_onnx(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return export_onnx(cm.handle, path)


def _write_onnx_int8(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry], *,
                     calibration: Any = None, method: str = "minmax") -> int:
    if calibration is None:
        raise ExportError("the int8 ONNX export needs calibration images; open training data (or give "
                          "--calibration DATA) so its activation ranges can be measured")
    return export_onnx_int8(cm, path, calibration, method=method).size_bytes


def _write_recipe(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return save_recipe(recipe_from_dict(cm.recipe), path)


def build_report(cm: CompressedModel, registry: Optional[MethodRegistry] = None) -> dict[str, Any]:
    """Sizes per stage and layer, measured metrics, recipe and provenance, as plain data.

    ``registry`` is needed when ``cm`` holds custom (plugin) encodings.
    """
    return {
        "model": cm.handle.name,
        "size": size_report(cm, registry=registry).to_dict(),
        "metrics": dict(cm.metrics),
        "recipe": cm.recipe,
        "provenance": cm.provenance,
    }


def _write_report_json(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    return atomic_write_bytes(path, json.dumps(build_report(cm, registry), indent=2, default=str).encode())


def _write_report_csv(cm: CompressedModel, path: Path, registry: Optional[MethodRegistry]) -> int:
    text = size_report(cm, registry=registry).to_csv()
    if cm.metrics:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([])
        writer.writerow(["metric", "value"])
        for key, value in sorted(cm.metrics.items()):
            writer.writerow([key, value])
        text += buf.getvalue()
    return atomic_write_bytes(path, text.encode())


Writer = Callable[..., int]

WRITERS: dict[str, Writer] = {
    "sqz": _write_sqz, "pt": _write_pt, "safetensors": _write_safetensors, "onnx": _write_onnx,
    "onnx-int8": _write_onnx_int8, "recipe": _write_recipe, "report_json": _write_report_json,
    "report_csv": _write_report_csv,
}
"""One writer per key of :data:`EXPORT_FORMATS` (a test checks they match)."""


def export(cm: CompressedModel, fmt: str, path: PathLike, *, registry: Optional[MethodRegistry] = None,
           calibration: Any = None, calibration_method: str = "minmax") -> int:
    """Write ``cm`` as ``fmt`` to ``path`` atomically; returns the bytes written.

    ``registry`` is needed when ``cm`` holds custom (plugin) encodings (the
    .sqz writer checks them against the model, the reports measure them).
    ``calibration`` (preprocessed images) and ``calibration_method`` are used
    by the formats that quantize activations (``needs_calibration``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if EXPORT_FORMATS[fmt].needs_calibration:
        return WRITERS[fmt](cm, Path(path), registry, calibration=calibration, method=calibration_method)
    return WRITERS[fmt](cm, Path(path), registry)
