"""A compressed model as saved to and loaded from a .sqz file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.model.handle import ModelHandle


@dataclass
class CompressedModel:
    """A model whose weights equal the decoding of ``encodings``.

    ``handle.architecture`` must be set (it is how the file rebuilds the module
    without the original). ``recipe`` is the recipe as a dict, ``metrics``
    measured numbers (accuracy, latency), ``provenance`` where it came from.
    Parameters and buffers without an encoding are stored exactly (float32).
    """

    handle: ModelHandle
    encodings: dict[str, WeightEncoding] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
