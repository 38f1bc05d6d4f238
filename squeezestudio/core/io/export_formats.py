"""The export formats: key, label and file ending, the one table the CLI and the GUI offer.

Kept apart from the writers (:mod:`squeezestudio.core.io.exports`) because it
imports nothing heavy: the GUI's export dialog and the CLI's argument parser
read it before torch is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its key (CLI ``--to``, recipe of the GUI), its label and its file ending."""

    key: str
    label: str
    suffix: str
    needs_calibration: bool = False  # written from calibration images (activation ranges)


EXPORT_FORMATS: dict[str, ExportFormat] = {f.key: f for f in (
    ExportFormat("sqz", "Compressed model (.sqz)", ".sqz"),
    ExportFormat("pt", "Dense PyTorch weights (.pt)", ".pt"),
    ExportFormat("safetensors", "Dense weights, safetensors (.safetensors)", ".safetensors"),
    ExportFormat("onnx", "ONNX model (.onnx)", ".onnx"),
    ExportFormat("onnx-int8", "ONNX int8 model, calibrated on the training images (.int8.onnx)", ".int8.onnx",
                 needs_calibration=True),
    ExportFormat("recipe", "Compression recipe (.yaml)", ".recipe.yaml"),
    ExportFormat("report_json", "Size and accuracy report (.json)", ".report.json"),
    ExportFormat("report_csv", "Size and accuracy report (.csv)", ".report.csv"),
)}
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
"""How an int8 export chooses activation ranges from its calibration images."""

# A file named only by its last ending still says what it is.
_LAST_ENDING = {".yaml": "recipe", ".yml": "recipe", ".json": "report_json", ".csv": "report_csv"}


def format_for_path(path: Union[str, Path]) -> Optional[str]:
    """The export format a file name implies (``model.recipe.yaml``, ``x.yml``, ``r.json``...), or None."""
    name = Path(path).name.lower()
    for key, fmt in sorted(EXPORT_FORMATS.items(), key=lambda kv: -len(kv[1].suffix)):
        if name.endswith(fmt.suffix):
            return key
    return _LAST_ENDING.get(Path(name).suffix)


def output_path(folder: Union[str, Path], base_name: str, fmt: str) -> Path:
    """Where ``fmt`` goes for this folder and base name (``model`` + ``.sqz`` ...)."""
    return Path(folder) / f"{base_name}{EXPORT_FORMATS[fmt].suffix}"
