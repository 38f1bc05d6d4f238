"""A results file that grows by one line per measured point, so an interrupted run resumes.

Next to a sweep's CSV (``sweep.csv`` -> ``sweep.points/``), local or on Ray, it keeps
``points.jsonl`` (one JSON object per point, appended and flushed as each
arrives) and each point's ``.sqz`` file. A point is identified by a key over
the model's weights, the data set (and the training data, for points that
retrain), the batch size and the point's recipe
(or sensitivity job), so resuming after changing any of them measures again
instead of reusing numbers that belong to something else.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.model.handle import ModelHandle

LOG_NAME = "points.jsonl"


def _tensor_digest(h: Any, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def inputs_fingerprint(handle: ModelHandle, data: ImageDataset, batch_size: Optional[int],
                       train_data: Optional[ImageDataset] = None) -> str:
    """A digest of everything a point's numbers depend on besides its recipe (``train_data``: what it retrains on)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([handle.name, handle.input_spec.to_dict(), list(handle.class_names),
                         None if handle.architecture is None else handle.architecture.to_dict(),
                         list(data.class_names), batch_size], sort_keys=True, default=str).encode())
    for name, t in handle.module.state_dict().items():
        h.update(name.encode())
        _tensor_digest(h, t)
    for part in (data, train_data):
        if part is None:
            continue
        if isinstance(part.images, torch.Tensor):
            _tensor_digest(h, part.images)
        else:  # a disk-backed set: its cache key names the files and the preprocessing
            h.update(part.images.digest.encode())
        if part.labels is not None:
            _tensor_digest(h, part.labels)
    return h.hexdigest()


def point_key(fingerprint: str, kind: str, what: Any) -> str:
    """The key of one point: the inputs' fingerprint plus its recipe (or job), canonically written."""
    text = json.dumps([fingerprint, kind, what], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def log_folder_for(output: Path) -> Path:
    """Where the results of the run writing ``output`` are kept: ``sweep.csv`` -> ``sweep.points``."""
    output = Path(output)
    return output.with_name(output.stem + ".points")


class PointLog:
    """Append-only record of measured points, read back on resume."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the results folder {self.folder} ({exc.strerror})") from exc
        self.path = self.folder / LOG_NAME

    def measured(self) -> dict[str, dict[str, Any]]:
        """Every recorded point by key (the newest record wins); a torn last line is ignored."""
        found: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return found
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that point is measured again
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                found[entry["key"]] = entry
        return found

    def sqz_path(self, key: str) -> Path:
        return self.folder / f"{key}.sqz"

    def record(self, key: str, entry: dict[str, Any], sqz: Optional[bytes] = None) -> None:
        """Store one point now (its .sqz first, then its line, flushed to disk)."""
        if sqz is not None:
            atomic_write_bytes(self.sqz_path(key), sqz)
        line = json.dumps({"key": key, **entry, "sqz": None if sqz is None else self.sqz_path(key).name},
                          default=str)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
