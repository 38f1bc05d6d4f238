"""The measured numbers a .sqz file carries, written so they never change its length.

A configuration has one size whichever command measured it: the same model
measured by ``compress``, ``sweep`` or the GUI must give the same bytes. So
the file always holds the same metric keys (:data:`FILE_METRICS`), each as a
fixed-width text (``"+9.833333e-01"``, or ``"n/a"`` padded to that width), and
never the machine-dependent ones (latency), which would also make repeated
runs differ byte for byte. Reading turns them back into floats (n/a ones are
left out); files written with plain JSON numbers still read.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

FILE_METRICS = ("top1", "top5", "agreement", "loss", "n")
"""The metric keys every .sqz file carries (accuracies, mean loss, image count)."""

WIDTH = 13  # len("+9.833333e-01")
MISSING = "n/a".rjust(WIDTH)


def _fixed(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(v) or abs(v) >= 1e99:
        return MISSING
    if abs(v) < 1e-99:
        v = 0.0
    return f"{v:+.6e}"


def metrics_for_file(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The fixed-width metric block written into the header (same length for any values)."""
    return {key: _fixed(metrics.get(key)) for key in FILE_METRICS}


def metrics_from_file(block: Mapping[str, Any]) -> dict[str, Optional[float]]:
    """Floats back from :func:`metrics_for_file`'s block (n/a left out), or plain numbers of older files."""
    out: dict[str, Optional[float]] = {}
    for key, value in block.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[str(key)] = float(value)
        elif isinstance(value, str):
            try:
                out[str(key)] = float(value)
            except ValueError:
                continue  # n/a: not measured
    return {k: v for k, v in out.items() if math.isfinite(v)}
