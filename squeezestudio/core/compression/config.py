"""Typed, self-describing method configurations.

A method's configuration is a dataclass whose fields carry their default,
range and one-sentence help in metadata (use :func:`param`). The recipe
validates against it, the CLI parses ``key=value`` options with it, and the GUI
generates its controls from :func:`config_params` -- so a plugin's method gets
validation, CLI options and GUI controls for free.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from squeezestudio.core.errors import RecipeError


@dataclass(frozen=True)
class ParamSpec:
    """One knob of a method, as the GUI and the validator see it."""

    name: str
    kind: str  # "float" | "int" | "bool" | "choice" | "str"
    default: Any
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    optional: bool = False  # None is an allowed value (e.g. "threshold unset")


def param(default: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
          choices: Sequence[Any] = (), help: str = "", optional: bool = False) -> Any:
    """Declare a config field with its range and help (use as a dataclass field default)."""
    meta = {"minimum": minimum, "maximum": maximum, "choices": tuple(choices), "help": help,
            "optional": optional}
    return dataclasses.field(default=default, metadata={"squeezestudio": meta})


def _kind_of(field: dataclasses.Field, meta: dict[str, Any]) -> str:
    if meta.get("choices"):
        return "choice"
    t = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    t = t.replace("Optional[", "").replace("]", "").replace(" | None", "").strip()
    return {"float": "float", "int": "int", "bool": "bool", "str": "str"}.get(t, "str")


def config_params(config_cls: type) -> list[ParamSpec]:
    """The knobs of a config dataclass, in declaration order."""
    specs = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata.get("squeezestudio", {})
        specs.append(ParamSpec(name=f.name, kind=_kind_of(f, meta), default=f.default,
                               minimum=meta.get("minimum"), maximum=meta.get("maximum"),
                               choices=meta.get("choices", ()), help=meta.get("help", ""),
                               optional=bool(meta.get("optional", False))))
    return specs


def _coerce(spec: ParamSpec, value: Any, where: str) -> Any:
    if value is None:
        if spec.optional:
            return None
        raise RecipeError(f"{where}: {spec.name} needs a value")
    try:
        if spec.kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = low in ("true", "1", "yes", "on")
            else:
                value = bool(value)
        elif spec.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            value = int(value)
        elif spec.kind == "float":
            value = float(value)
            if not math.isfinite(value):
                raise RecipeError(f"{where}: {spec.name} must be a finite number, not {value}")
        elif spec.kind == "choice":
            if value not in spec.choices:
                text = str(value)
                match = [c for c in spec.choices if str(c) == text]
                if not match:
                    options = ", ".join(str(c) for c in spec.choices)
                    raise RecipeError(f"{where}: {spec.name} must be one of {options}, not {value!r}")
                value = match[0]
        else:
            value = str(value)
    except (TypeError, ValueError):
        raise RecipeError(f"{where}: {spec.name} must be a {spec.kind}, not {value!r}") from None
    if spec.minimum is not None and value < spec.minimum:
        raise RecipeError(f"{where}: {spec.name}={value} is below the minimum {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise RecipeError(f"{where}: {spec.name}={value} is above the maximum {spec.maximum}")
    return value


def make_config(config_cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build and validate a config from a plain dict; unknown keys are an error."""
    specs = {s.name: s for s in config_params(config_cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise RecipeError(f"{where}: unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(specs)}")
    kwargs = {k: _coerce(specs[k], v, where) for k, v in values.items()}
    config = config_cls(**kwargs)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate(where)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-able dict (inverse of :func:`make_config`)."""
    return dataclasses.asdict(config)
