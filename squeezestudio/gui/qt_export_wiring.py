"""What File > Export writes, wired to the core's writers (no Qt widgets here).

The export dialog (another module) asks for formats and a folder and calls
:func:`export_one` per format; every writer returns the bytes it wrote, and
every file goes through the core's atomic writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.errors import ExportError

FORMATS = ("sqz", "pt", "safetensors", "onnx", "recipe", "report_json", "report_csv")


def export_one(session: Any, experiment: Any, fmt: str, path: Path) -> int:
    """Write ``experiment``'s compressed model (or a report of it) as ``fmt``; bytes written."""
    cm = experiment.compressed
    if cm is None:
        raise ExportError("this result is no longer in memory; click its point and evaluate it again (F5)")
    if fmt == "sqz":
        from squeezestudio.core.compression.codec import save_sqz
        return int(save_sqz(cm, path))
    if fmt == "pt":
        from squeezestudio.core.loading import save_state_dict
        return int(save_state_dict(cm.handle, path))
    if fmt == "safetensors":
        from squeezestudio.core.loading import save_safetensors
        return int(save_safetensors(cm.handle, path))
    if fmt == "onnx":
        from squeezestudio.core.export_onnx import export_onnx
        return int(export_onnx(cm.handle, path))
    if fmt == "recipe":
        return _write_recipe(experiment, path)
    if fmt == "report_json":
        return atomic_write_bytes(path, json.dumps(report_dict(session, experiment), indent=2).encode("utf-8"))
    if fmt == "report_csv":
        return atomic_write_bytes(path, _report_csv(experiment).encode("utf-8"))
    raise ExportError(f"unknown export format {fmt!r}")


def report_dict(session: Any, experiment: Any) -> dict[str, Any]:
    """Size and accuracy of the exported result next to the original's."""
    original = session.experiments.original()
    report = experiment.size_report
    d: dict[str, Any] = {"model": getattr(session.handle, "name", None), "data": session.data_source,
                         "experiment": experiment.to_dict(),
                         "original": None if original is None else original.to_dict()}
    if report is not None and hasattr(report, "to_dict"):
        d["size_report"] = report.to_dict()
    if original is not None and experiment.size_bytes:
        d["compression_ratio"] = original.size_bytes / experiment.size_bytes
    return d


def _report_csv(experiment: Any) -> str:
    report = experiment.size_report
    if report is not None and hasattr(report, "to_csv"):
        text = report.to_csv()
        if isinstance(text, str):
            return text
    from squeezestudio.core.experiments import ExperimentLog
    return ExperimentLog([experiment]).to_csv_text()


def _write_recipe(experiment: Any, path: Path) -> int:
    try:
        from squeezestudio.core.compression.recipe import recipe_from_dict, save_recipe
    except ImportError:
        return atomic_write_bytes(path, json.dumps(experiment.recipe, indent=2).encode("utf-8"))
    written = save_recipe(recipe_from_dict(experiment.recipe), path)
    return int(written) if isinstance(written, int) else Path(path).stat().st_size
