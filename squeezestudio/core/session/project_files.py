"""Project files and autosaves: the JSON that holds a session's model, data and experiments.

Kept apart from :mod:`squeezestudio.core.session.studio_session` (the live state) so
reading and checking a file on disk has one home, used by the session, the
crash-recovery offer and the tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from squeezestudio.core.atomic_write import PathLike
from squeezestudio.core.bounded_parse import load_json, read_text_file
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.limits import current_limits
from squeezestudio.core.model.input_spec import InputSpec
from squeezestudio.core.session.experiments import ExperimentLog

PROJECT_FORMAT = "squeezestudio-project"
PROJECT_VERSION = 1


def default_autosave_dir() -> Path:
    """Where autosaves go: $SQUEEZESTUDIO_HOME or ~/.local/share/squeezestudio."""
    root = os.environ.get("SQUEEZESTUDIO_HOME")
    return Path(root) if root else Path.home() / ".local" / "share" / "squeezestudio"


@dataclass(frozen=True)
class AutosaveInfo:
    """An autosave found on disk and when it was written (seconds since the epoch)."""

    path: Path
    timestamp: float


def find_autosave(folder: Optional[PathLike] = None) -> Optional[AutosaveInfo]:
    """The autosave in ``folder`` (default folder if None) with its time, or None."""
    target = (Path(folder) if folder is not None else default_autosave_dir()) / "autosave.sqproj"
    if not target.is_file():
        return None
    try:
        stamp = float(read_project(target).get("autosaved_at", target.stat().st_mtime))
    except SqueezeStudioError:
        return None
    return AutosaveInfo(path=target, timestamp=stamp)


def read_project(path: PathLike) -> dict[str, Any]:
    """Parse and check a project file; problems are one-sentence errors."""
    limits = current_limits()
    text = read_text_file(path, limits.json_bytes, "project file", "json_bytes")
    try:
        d = load_json(text, "its text")
    except SqueezeStudioError as exc:
        raise SqueezeStudioError(f"{path} is not a readable SqueezeStudio project ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != PROJECT_FORMAT:
        raise SqueezeStudioError(f"{path} is not a SqueezeStudio project file")
    version = d.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SqueezeStudioError(f"{path} is not a SqueezeStudio project file (its version is not a number)")
    if version > PROJECT_VERSION:
        raise SqueezeStudioError(f"{path} was written by a newer SqueezeStudio (version {d.get('version')})")
    ExperimentLog.from_dict(d)  # validates every entry
    return d


def model_settings(handle: Any) -> dict[str, Any]:
    """What the user set on the model (preprocessing, class names) that its file may not record."""
    spec = getattr(handle, "input_spec", None)
    if spec is None:  # no model, or a stand-in without one
        return {}
    return {"input_spec": spec.to_dict(), "class_names": [str(c) for c in handle.class_names]}


def apply_model_settings(handle: Any, d: dict[str, Any]) -> None:
    """Put a project's saved preprocessing and class names back on the reopened model."""
    if getattr(handle, "input_spec", None) is None:
        return
    if isinstance(d.get("input_spec"), dict):
        try:
            handle.input_spec = InputSpec.from_dict(d["input_spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SqueezeStudioError(f"the project's preprocessing is invalid ({exc})") from None
    names = d.get("class_names")
    if isinstance(names, list) and len(names) == len(handle.class_names):
        handle.class_names = [str(n) for n in names]
