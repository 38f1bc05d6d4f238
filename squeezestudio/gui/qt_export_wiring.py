"""What File > Export writes: the core's export table, nothing of its own (no Qt widgets here).

The export dialog asks for formats and a folder and calls :func:`export_one`
per format; it goes straight to :func:`squeezestudio.core.io.exports.export`
(the same writers ``squeezestudio export`` uses), which writes atomically and
returns the bytes written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.exports import EXPORT_FORMATS, export

FORMATS = tuple(EXPORT_FORMATS)


def export_one(session: Any, experiment: Any, fmt: str, path: Path) -> int:
    """Write the point's model (or a report of it) as ``fmt``; bytes written.

    A ``.sqz`` export copies the point's stored file byte for byte (the size
    on the plot); other formats are written from its decoded model.
    """
    if fmt == "sqz" and session.points.path(experiment) is not None:
        return int(atomic_write_bytes(path, session.points.read_bytes(experiment)))
    cm, _ = session.point_model(experiment, rebuild=False)
    if cm is None:
        raise ExportError("the original model has no compressed form to export; click a compressed point")
    return int(export(cm, fmt, path))


def expected_sizes(experiment: Any) -> dict[str, int]:
    """Sizes the window has already shown for this result (the plot's .sqz bytes)."""
    return {"sqz": int(experiment.size_bytes)} if experiment.size_bytes else {}
