"""What File > Export writes: the core's export table, nothing of its own (no Qt widgets here).

The export dialog asks for formats and a folder and calls :func:`export_one`
per format; it goes straight to :func:`squeezestudio.core.io.exports.export`
(the same writers ``squeezestudio export`` uses), which writes atomically and
returns the bytes written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.export_formats import EXPORT_FORMATS
from squeezestudio.core.io.exports import export

FORMATS = tuple(EXPORT_FORMATS)


def export_one(experiment: Any, fmt: str, path: Path, registry: MethodRegistry,
               calibration: Optional[Callable[[], Any]] = None) -> int:
    """Write ``experiment``'s compressed model (or a report of it) as ``fmt``; bytes written.

    ``registry`` checks and measures plugin (custom) encodings; ``calibration()``
    gives the images an int8 export measures activation ranges on; it is called
    only for such a format.
    """
    cm = experiment.compressed
    if cm is None:
        raise ExportError("this result is no longer in memory; click its point and evaluate it again (F5)")
    if EXPORT_FORMATS[fmt].needs_calibration:
        return int(export(cm, fmt, path, registry=registry,
                          calibration=calibration() if calibration is not None else None))
    return int(export(cm, fmt, path, registry=registry))


def expected_sizes(experiment: Any) -> dict[str, int]:
    """Sizes the window has already shown for this result (the plot's .sqz bytes)."""
    return {"sqz": int(experiment.size_bytes)} if experiment.size_bytes else {}
