"""What File > Export writes: the core's export table, nothing of its own (no Qt widgets here).

The export dialog asks for formats and a folder and calls :func:`export_one`
per format; it goes straight to :func:`squeezestudio.core.io.exports.export`
(the same writers ``squeezestudio export`` uses), which writes atomically and
returns the bytes written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.errors import ExportError, SqueezeStudioError
from squeezestudio.core.io.export_formats import EXPORT_FORMATS
from squeezestudio.core.io.exports import export
from squeezestudio.core.session.experiments import format_bytes

FORMATS = tuple(EXPORT_FORMATS)


def export_one(session: Any, experiment: Any, fmt: str, path: Path,
               calibration: Optional[Callable[[], Any]] = None) -> int:
    """Write the point's model (or a report of it) as ``fmt``; bytes written.

    A ``.sqz`` export copies the point's stored file byte for byte (the size
    on the plot); other formats are written from its decoded model, with the
    session's registry (plugin encodings). ``calibration()`` gives the images
    an int8 export measures activation ranges on; it is called only for such a format.
    """
    if fmt == "sqz" and session.points.path(experiment) is not None:
        return int(atomic_write_bytes(path, session.points.read_bytes(experiment)))
    cm, _ = session.point_model(experiment, rebuild=False)
    if cm is None:
        raise ExportError("the original model has no compressed form to export; click a compressed point")
    registry: MethodRegistry = session.registry
    if EXPORT_FORMATS[fmt].needs_calibration:
        return int(export(cm, fmt, path, registry=registry,
                          calibration=calibration() if calibration is not None else None))
    return int(export(cm, fmt, path, registry=registry))


DENSE_FORMATS = ("pt", "safetensors", "onnx")


def dense_notes(session: Any, experiment: Any) -> dict[str, str]:
    """Per format, a note saying that the plain exports are dense float32, and about how large.

    The size is the point's parameters at 4 bytes each (the file adds a little
    structure), so the user sees before exporting that only the .sqz (and the
    int8 ONNX, at about a quarter) keeps the compression.
    """
    try:
        cm, _ = session.point_model(experiment, rebuild=False)  # memory, else its stored file (small, fast)
    except SqueezeStudioError:  # recipe-only point: the export rebuilds it; count the original's parameters
        cm = None
    handle = cm.handle if cm is not None else session.handle
    if handle is None:
        return {}
    dense = 4 * sum(int(p.numel()) for p in handle.module.parameters())
    text = (f"dense float32, about {format_bytes(dense)}: pruning, clustering and quantization are not kept "
            f"(the .sqz of this point is {format_bytes(int(experiment.size_bytes))})")
    return {fmt: text for fmt in DENSE_FORMATS}


def expected_sizes(experiment: Any) -> dict[str, int]:
    """Sizes the window has already shown for this result (the plot's .sqz bytes)."""
    return {"sqz": int(experiment.size_bytes)} if experiment.size_bytes else {}
