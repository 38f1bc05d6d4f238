"""Class names from a labels file, and whether a model's names are only placeholders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.handle import default_class_names


def read_labels_file(path: "str | Path") -> list[str]:
    """Names from ``path``: a JSON list, or one name per line (blank lines and ``#`` comments skipped)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError:
        raise ModelLoadError(f"the labels file {p} cannot be read") from None
    except UnicodeDecodeError:
        raise ModelLoadError(f"the labels file {p} is not UTF-8 text") from None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped)
        except ValueError:
            raise ModelLoadError(f"the labels file {p.name} starts like JSON but is not a valid JSON list") from None
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise ModelLoadError(f"the labels file {p.name} must be a JSON list of names")
        names = [str(n) for n in names]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise ModelLoadError(f"the labels file {p.name} holds no names; write one class name per line")
    return names


def has_placeholder_names(names: Sequence[str]) -> bool:
    """True when the names are the ``class 0 .. class n-1`` placeholders (the file had none)."""
    return list(names) == default_class_names(len(names))
