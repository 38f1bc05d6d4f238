"""The SqueezeStudio metadata embedded in the checkpoints we save.

A checkpoint saved by SqueezeStudio reopens without ``--arch``: it records the
architecture (how to rebuild the module), class names and input spec. In a
torch file it is a dict of plain types under the ``"squeezestudio"`` key next
to ``"state_dict"`` (so the weights-only unpickler accepts it); in a
safetensors file it is JSON in the string metadata under the same key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from squeezestudio.core.bounded_parse import load_json
from squeezestudio.core.errors import ModelLoadError, PreprocessingError
from squeezestudio.core.limits import current_limits
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.model.outputs import output_semantics

METADATA_KEY = "squeezestudio"
FORMAT_TAG = "squeezestudio-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a SqueezeStudio checkpoint says about its model."""

    name: str
    architecture: Optional[ArchitectureSpec]
    class_names: Optional[list[str]]
    input_spec: Optional[InputSpec]
    outputs: Optional[dict[str, Any]] = None


def metadata_from_handle(handle: ModelHandle) -> dict[str, Any]:
    """The metadata dict for ``handle``: only str/int/float/bool/list/dict/None values."""
    meta: dict[str, Any] = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "name": handle.name,
        "class_names": [str(c) for c in handle.class_names],
        "input_spec": handle.input_spec.to_dict(),
        "architecture": handle.architecture.to_dict() if handle.architecture is not None else None,
        "outputs": output_semantics(handle),
    }
    # A round trip through JSON proves every value is a plain type and copies it.
    return json.loads(json.dumps(meta))


def metadata_to_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True)


def _names(names: Any, source: str) -> list[str]:
    """Class names: a list of short strings (numbers accepted), never nested structures."""
    limits = current_limits()
    if not isinstance(names, list) or len(names) > limits.class_count or not all(
            isinstance(n, (str, int)) and not isinstance(n, bool) and len(str(n)) <= limits.key_length
            for n in names):
        raise ModelLoadError(f"the SqueezeStudio metadata in {source} has class names that are not a list of "
                             f"at most {limits.class_count:,d} short strings")
    return [str(n) for n in names]


def parse_metadata(raw: Any, source: str) -> CheckpointMetadata:
    """Validate ``raw`` (a dict, or its JSON text) into :class:`CheckpointMetadata`.

    ``source`` names the file in error messages.
    """
    if isinstance(raw, str):
        raw = load_json(raw, f"the SqueezeStudio metadata in {source}", ModelLoadError)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_TAG:
        raise ModelLoadError(f"the SqueezeStudio metadata in {source} is malformed")
    version = raw.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelLoadError(f"{source} was saved by a newer SqueezeStudio (metadata version "
                             f"{version!r}); update SqueezeStudio to open it")
    try:
        arch = raw.get("architecture")
        spec = ArchitectureSpec.from_dict(arch) if arch is not None else None
        names = raw.get("class_names")
        class_names = _names(names, source) if names is not None else None
        ispec = raw.get("input_spec")
        input_spec = InputSpec.from_dict(ispec) if ispec is not None else None
        outputs = raw.get("outputs")
        if outputs is not None and not isinstance(outputs, dict):
            raise TypeError("outputs is not a mapping")
    except (KeyError, TypeError, ValueError, AttributeError, PreprocessingError) as exc:
        raise ModelLoadError(f"the SqueezeStudio metadata in {source} is malformed ({exc})") from exc
    name = raw.get("name", "")
    if not isinstance(name, str) or len(name) > current_limits().key_length:
        raise ModelLoadError(f"the SqueezeStudio metadata in {source} has a model name that is not a short "
                             f"string")
    return CheckpointMetadata(name=name, architecture=spec,
                              class_names=class_names, input_spec=input_spec, outputs=outputs)
