"""Class names from a labels file, and whether a model's names are only placeholders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from squeezestudio.core.errors import DataError, ModelLoadError
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


def _leading_id(name: str) -> str | None:
    """``n01440764`` of ``n01440764 tench, Tinca tinca`` (Caffe's synset_words.txt): a first word with a digit."""
    first, _, rest = name.partition(" ")
    return first if rest and any(c.isdigit() for c in first) else None


class ClassLookup:
    """The model's class index for a data set's class name (a folder name, a CSV label).

    A name matches a class name exactly or, failing that, the identifier a
    class name starts with (``n01440764`` for ``n01440764 tench``), so image
    folders named by WordNet id match a synset_words-style labels file.
    Real labels files repeat names (ImageNet has two "crane" and two
    "maillot" classes): such a name is refused only when data uses it,
    because it cannot say which of the classes it means.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._exact: dict[str, list[int]] = {}
        self._ids: dict[str, list[int]] = {}
        for i, n in enumerate(self.names):
            self._exact.setdefault(n, []).append(i)
            ident = _leading_id(n)
            if ident is not None:
                self._ids.setdefault(ident, []).append(i)

    def __contains__(self, name: str) -> bool:
        return name in self._exact or name in self._ids

    def index(self, name: str) -> int:
        """The class index of ``name``; a :class:`DataError` when it names no class or several."""
        found = self._exact.get(name) or self._ids.get(name)
        if not found:
            raise DataError(f"{name!r} is not one of the {len(self.names)} class names")
        if len(found) > 1:
            shown = ", ".join(str(i) for i in found[:4])
            raise DataError(f"the class name {name!r} belongs to {len(found)} of the model's classes ({shown}); "
                            "name that folder or label by its class index instead")
        return found[0]
