"""How much a file may make us allocate or parse, checked BEFORE allocating or parsing.

A few bytes on disk can describe gigabytes: a stride-0 tensor view, an
architecture argument of ``num_classes=10_000_000``, an input of 20000x20000
pixels, JSON nested 100,000 deep, a pickle whose shared sub-tuples expand to
2^60 nodes. Every loader computes what an input would cost from its
description and compares it with a limit from here; the error names the
figure and the option that raises the limit, so a user with a genuinely large
model knows what to do.

Limits are read on each call from the environment (``SQUEEZESTUDIO_LIMIT_<NAME>``),
and can be overridden for a block of code with :func:`overridden_limits` (the CLI's
``--limit NAME=VALUE`` does that). Nothing here allocates or imports torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Iterator, Mapping

from squeezestudio.core.errors import LimitExceededError, SqueezeStudioError

ENV_PREFIX = "SQUEEZESTUDIO_LIMIT_"


@dataclass(frozen=True)
class Limits:
    """Every budget in one place (all counts, never seconds: budgets are in steps)."""

    tensor_elements: int = 1 << 31
    """Absolute cap on the elements of all of a model's tensors together (8 GiB of float32)."""
    elements_floor: int = 1 << 24
    """Elements any file may expand to whatever its size (64 MiB of float32)."""
    elements_per_byte: int = 4
    """Dense files (checkpoints, safetensors): elements allowed per byte of the file beyond the floor."""
    sqz_elements_per_byte: int = 4096
    """.sqz files (pruned, clustered, entropy-coded): elements allowed per byte of the file."""
    input_elements: int = 1 << 25
    """Elements of one input image at batch 1 (channels x height x width; 3x3344x3344)."""
    activation_elements: int = 1 << 28
    """Elements of all activations of one forward pass at batch 1 (1 GiB of float32)."""
    json_depth: int = 64
    """Nesting depth of JSON/YAML in headers, metadata, recipes and projects."""
    json_bytes: int = 64 << 20
    """Size of one JSON document (header, metadata, project)."""
    recipe_bytes: int = 4 << 20
    """Size of a recipe file."""
    yaml_nodes: int = 200_000
    """Nodes of a YAML document after expanding its aliases (a 'billion laughs' file has 9^10)."""
    key_length: int = 4096
    """Characters of one key or name (tensor names, layer names, class names, model names)."""
    pickle_depth: int = 64
    """Nesting depth of the structure a weights-only pickle builds."""
    pickle_nodes: int = 20_000_000
    """Objects a pickle builds, counting shared sub-objects each time they are used."""
    loop_iterations: int = 100_000
    """Constant trip count of an ONNX Loop."""
    csv_rows: int = 5_000_000
    """Rows of a data CSV."""
    class_count: int = 100_000
    """Classes of a data set or a model."""

    def describe(self, name: str) -> str:
        """How to raise the limit ``name`` (for error messages)."""
        return f"--limit {name}=N or {ENV_PREFIX}{name.upper()}=N"


class _Override:
    """The limits set by :func:`overridden_limits` (process-wide: loaders may run on worker threads)."""

    limits: Limits | None = None
    lock = threading.Lock()


_OVERRIDE = _Override()


def _from_environment() -> Limits:
    values: dict[str, int] = {}
    for f in dataclasses.fields(Limits):
        raw = os.environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = parse_limit_value(f.name, raw)
    return Limits(**values)


def parse_limit_value(name: str, text: str) -> int:
    """A positive integer limit from text such as ``2000000000`` or ``2e9``."""
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise LimitExceededError(f"the limit {name} must be a positive whole number, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 1 or int(value) != value:
        raise LimitExceededError(f"the limit {name} must be a positive whole number, not {text!r}")
    return int(value)


def current_limits() -> Limits:
    """The limits in force: an override, else the environment's, else the defaults."""
    override = _OVERRIDE.limits
    return override if override is not None else _from_environment()


def limit_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Limits)]


@contextlib.contextmanager
def overridden_limits(changes: Mapping[str, int]) -> Iterator[Limits]:
    """Run a block with some limits changed (unknown names are an error)."""
    unknown = sorted(set(changes) - set(limit_names()))
    if unknown:
        raise LimitExceededError(f"unknown limit {unknown[0]!r}; known limits: {', '.join(limit_names())}")
    with _OVERRIDE.lock:
        previous = _OVERRIDE.limits
        limits = dataclasses.replace(current_limits(), **dict(changes))
        _OVERRIDE.limits = limits
    try:
        yield limits
    finally:
        with _OVERRIDE.lock:
            _OVERRIDE.limits = previous


def element_budget(file_bytes: int, per_byte: int, limits: Limits | None = None) -> int:
    """Elements a file of ``file_bytes`` may expand to: floor + per_byte * size, capped."""
    lim = limits or current_limits()
    return min(lim.tensor_elements, lim.elements_floor + per_byte * max(int(file_bytes), 0))


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def check_elements(count: int, budget: int, what: str, limit_name: str, *, bytes_per_element: int = 4,
                   error: type[SqueezeStudioError] = LimitExceededError) -> None:
    """Refuse ``count`` elements over ``budget``, naming both figures and the option."""
    if count > budget:
        raise error(f"{what} would allocate {count:,d} elements ({human_bytes(count * bytes_per_element)}), "
                    f"over the limit of {budget:,d} ({limits_hint(limit_name)})")


def limits_hint(limit_name: str) -> str:
    return f"raise it with {current_limits().describe(limit_name)} if the file is trusted and really this large"


def check_count(value: int, limit: int, what: str, limit_name: str,
                error: type[SqueezeStudioError] = LimitExceededError) -> None:
    """Refuse a count (depth, rows, characters, nodes) over its limit."""
    if value > limit:
        raise error(f"{what} is {value:,d}, over the limit of {limit:,d} ({limits_hint(limit_name)})")
