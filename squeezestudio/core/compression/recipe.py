"""Recipes: what to do to each layer, as a file a person can read and edit.

A recipe has global method settings (a method listed there is enabled for
every layer it applies to) and per-layer overrides keyed by an exact layer
name or an fnmatch glob::

    version: 1
    methods:                      # global defaults
      prune: {sparsity: 0.9, scope: global}
      cluster: {bits: 5}
    layers:                       # overrides, in order
      "features.*": {cluster: {bits: 8}}
      features.0: {prune: {sparsity: 0.5}}
      classifier.6: {cluster: null, quantize: {bits: 8}}   # null = disabled here
    finetune: {epochs: 1}         # carried for the fine-tuning step
    architecture: []              # architecture changes, e.g. {method: fire, layer: features.3}

A staged recipe (Deep Compression's prune -> retrain -> cluster -> retrain)
is a list of such one-stage recipes, applied in order, each on the model the
previous one left (masks, shared weights and substitutions kept)::

    version: 1
    stages:
      - name: prune
        methods: {prune: {sparsity: 0.92, scope: global}}
        finetune: {epochs: 10, holdout: 0.1}   # best epoch chosen on 10% of the TRAINING data
      - name: cluster
        methods: {cluster: {bits: 4}}
        finetune: {epochs: 5, optimizer: sgd}

A one-stage recipe is written as before (no ``stages`` key).

An override's options are merged over the global ones for that method.
Matching patterns apply in file order with globs first and exact names last,
so later patterns win and an exact name beats any glob. ``validate`` reports
every mistake as a :class:`RecipeError` sentence; ``resolve`` turns a recipe
into per-method, per-layer typed configs in application order.
:func:`parse_layer_option` and :func:`build_recipe_from_cli` read the
command line's compact forms.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import yaml
from torch import nn

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.bounded_parse import load_json, load_yaml, read_text_file
from squeezestudio.core.compression.config import config_to_dict, make_config
from squeezestudio.core.compression.method import CompressionMethod
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.limits import current_limits

RECIPE_VERSION = 1
_TOP_KEYS = ("version", "name", "methods", "layers", "finetune", "architecture", "stages")
_STAGE_KEYS = ("name", "methods", "layers", "finetune", "architecture")

MethodOptions = dict[str, Any]
LayerOverride = dict[str, Optional[MethodOptions]]


@dataclass
class Recipe:
    """A compression recipe (see the module docstring for the file layout)."""

    methods: dict[str, MethodOptions] = field(default_factory=dict)
    layers: dict[str, LayerOverride] = field(default_factory=dict)
    finetune: Optional[dict[str, Any]] = None
    architecture: list[dict[str, Any]] = field(default_factory=list)
    name: str = ""
    version: int = RECIPE_VERSION
    stages: list["Recipe"] = field(default_factory=list)  # a staged recipe: its stages (one-stage recipes each)

    def stage_list(self) -> list["Recipe"]:
        """The stages to apply in order: the recipe itself when it has no ``stages``."""
        return list(self.stages) if self.stages else [self]


def is_glob(pattern: str) -> bool:
    """True if ``pattern`` has fnmatch wildcards (otherwise it is an exact layer name)."""
    return any(ch in pattern for ch in "*?[")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"{where} must be a mapping of names to values, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise RecipeError(f"{where}: the key {key!r} must be a string")
    return value


def recipe_from_dict(data: Any) -> Recipe:
    """Build a :class:`Recipe` from parsed YAML/JSON, checking its structure (stages included)."""
    data = _mapping(data, "the recipe")
    if "stages" in data:
        return _staged_from_dict(data)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise RecipeError(f"the recipe has unknown section(s) {', '.join(unknown)}; known: {', '.join(_TOP_KEYS)}")
    version = data.get("version", RECIPE_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecipeError(f"the recipe version must be a positive integer, not {version!r}")
    if version > RECIPE_VERSION:
        raise RecipeError(f"the recipe has version {version}, newer than this SqueezeStudio reads "
                          f"({RECIPE_VERSION}); update SqueezeStudio")
    methods = {m: dict(_mapping(opts, f"methods.{m}"))
               for m, opts in _mapping(data.get("methods"), "methods").items()}
    layers: dict[str, LayerOverride] = {}
    raw_layers = data.get("layers")
    if isinstance(raw_layers, dict):  # YAML reads a layer named 0 (nn.Sequential) as an int
        raw_layers = {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                      for k, v in raw_layers.items()}
    for pattern, override in _mapping(raw_layers, "layers").items():
        entry = _mapping(override, f"layers.{pattern}")
        layers[pattern] = {m: None if opts is None else dict(_mapping(opts, f"layers.{pattern}.{m}"))
                           for m, opts in entry.items()}
    finetune = data.get("finetune")
    if finetune is not None:
        finetune = dict(_mapping(finetune, "finetune"))
    architecture = data.get("architecture") or []
    if not isinstance(architecture, list) or not all(isinstance(a, dict) for a in architecture):
        raise RecipeError("architecture must be a list of mappings such as {method: fire, layer: features.3}")
    for i, entry in enumerate(architecture):
        if not isinstance(entry.get("method"), str) or not isinstance(entry.get("layer"), str):
            raise RecipeError(f"architecture entry {i + 1} needs a 'method' and a 'layer' name")
    return Recipe(methods=methods, layers=layers, finetune=finetune,
                  architecture=[dict(a) for a in architecture], name=str(data.get("name", "") or ""),
                  version=version)


def _staged_from_dict(data: dict) -> Recipe:
    """A staged recipe: top level ``version``/``name``/``stages`` only, each stage a one-stage recipe."""
    extra = sorted(set(data) - {"version", "name", "stages"})
    if extra:
        raise RecipeError(f"a recipe with stages keeps {', '.join(extra)} inside its stages, not at the top level")
    raw = data.get("stages")
    if not isinstance(raw, list) or not raw:
        raise RecipeError("stages must be a non-empty list of stages, each with methods (and optional "
                          "layers, finetune, architecture)")
    top = recipe_from_dict({k: v for k, v in data.items() if k != "stages"})
    stages = []
    for i, stage in enumerate(raw):
        entry = _mapping(stage, f"stage {i + 1}")
        unknown = sorted(set(entry) - set(_STAGE_KEYS))
        if unknown:
            raise RecipeError(f"stage {i + 1} has unknown key(s) {', '.join(unknown)}; known: {', '.join(_STAGE_KEYS)}")
        parsed = recipe_from_dict(entry)
        parsed.name = parsed.name or f"stage {i + 1}"
        stages.append(parsed)
    top.stages = stages
    return top


def flatten_stages(recipe: Recipe) -> Recipe:
    """One recipe that names every stage's methods (later stages win), e.g. to plan fine-tuning hooks."""
    if not recipe.stages:
        return recipe
    out = Recipe(name=recipe.name, version=recipe.version)
    for stage in recipe.stages:
        for method, opts in stage.methods.items():
            out.methods[method] = {**out.methods.get(method, {}), **opts}
        for pattern, override in stage.layers.items():
            entry = out.layers.setdefault(pattern, {})
            for method, opts in override.items():
                entry[method] = None if opts is None else {**(entry.get(method) or {}), **opts}
        out.architecture.extend(dict(a) for a in stage.architecture)
    return out


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (inverse of :func:`recipe_from_dict`)."""
    out: dict[str, Any] = {"version": recipe.version}
    if recipe.name:
        out["name"] = recipe.name
    if recipe.stages:
        out["stages"] = [{k: v for k, v in recipe_to_dict(stage).items() if k != "version"}
                         for stage in recipe.stages]
        return out
    out["methods"] = {m: dict(o) for m, o in recipe.methods.items()}
    out["layers"] = {p: {m: None if o is None else dict(o) for m, o in ov.items()}
                     for p, ov in recipe.layers.items()}
    if recipe.finetune is not None:
        out["finetune"] = dict(recipe.finetune)
    if recipe.architecture:
        out["architecture"] = [dict(a) for a in recipe.architecture]
    return out


def load_recipe(path: Union[str, Path]) -> Recipe:
    """Read a recipe from a YAML or JSON file (JSON when the name ends in .json)."""
    p = Path(path)
    text = read_text_file(p, current_limits().recipe_bytes, "recipe file", "recipe_bytes", RecipeError)
    if p.suffix.lower() == ".json":
        data = load_json(text, f"the recipe {p.name}", RecipeError)
    else:
        data = load_yaml(text, f"the recipe {p.name}", RecipeError)
    return recipe_from_dict(data)


def save_recipe(recipe: Recipe, path: Union[str, Path]) -> int:
    """Write the recipe atomically as JSON (.json) or YAML (anything else); returns bytes written."""
    p = Path(path)
    data = recipe_to_dict(recipe)
    if p.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return atomic_write_bytes(p, text.encode("utf-8"))


def matching_patterns(recipe: Recipe, layer: str) -> list[str]:
    """Override patterns that apply to ``layer``, weakest first (globs, then exact names)."""
    globs = [p for p in recipe.layers if is_glob(p) and fnmatch.fnmatchcase(layer, p)]
    exact = [p for p in recipe.layers if not is_glob(p) and p == layer]
    return globs + exact


def layer_plan(recipe: Recipe, layer_names: Iterable[str]) -> dict[str, dict[str, MethodOptions]]:
    """For every layer, the enabled methods and their merged (unvalidated) options."""
    plan: dict[str, dict[str, MethodOptions]] = {}
    for layer in layer_names:
        merged = {m: dict(o) for m, o in recipe.methods.items()}
        for pattern in matching_patterns(recipe, layer):
            for method, opts in recipe.layers[pattern].items():
                if opts is None:
                    merged.pop(method, None)
                else:
                    base = merged.get(method, recipe.methods.get(method, {}))
                    merged[method] = {**base, **opts}
        plan[layer] = merged
    return plan


def _unknown_layer(name: str, layer_names: Sequence[str]) -> RecipeError:
    shown = ", ".join(layer_names[:8]) + (", ..." if len(layer_names) > 8 else "")
    return RecipeError(f"unknown layer {name!r} in the recipe; the model's layers are: {shown or 'none'}")


def validate(recipe: Recipe, layer_names: Iterable[str], registry: MethodRegistry,
             skip_methods: Iterable[str] = (), strict_names: bool = True) -> None:
    """Raise :class:`RecipeError` for the first problem found; return None if the recipe is usable.

    Checks method names, layer names and globs (each must match a layer),
    option names and ranges, and methods that exclude each other on one layer.
    Methods in ``skip_methods`` (already applied) are left out of the checks;
    ``strict_names=False`` (after an architecture change replaced layers) lets
    patterns match nothing.
    """
    names = list(layer_names)
    if recipe.stages:  # each stage on its own; after an architecture change names may no longer match
        changed = False
        for stage in recipe.stages:
            validate(stage, names, registry, skip_methods, strict_names and not changed)
            changed = changed or bool(stage.architecture)
        return
    skip = set(skip_methods)
    for method, opts in recipe.methods.items():
        if method not in skip:
            make_config(registry.get(method).config_class, opts, where=f"methods.{method}")
    for pattern, override in recipe.layers.items():
        active = [m for m in override if m not in skip]
        for method in active:
            registry.get(method)
        if not active or not strict_names:
            continue
        if is_glob(pattern):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise RecipeError(f"the layer pattern {pattern!r} matches no layer of the model")
        elif pattern not in names:
            raise _unknown_layer(pattern, names)
    for entry in recipe.architecture:
        if entry["method"] not in skip:
            registry.get(entry["method"])
    for layer, methods in layer_plan(recipe, names).items():
        enabled = [m for m in methods if m not in skip]
        for method in enabled:
            make_config(registry.get(method).config_class, methods[method], where=f"layer {layer}, {method}")
        for method in enabled:
            clash = [o for o in registry.get(method).exclusive_with if o in enabled]
            if clash:
                raise RecipeError(f"layer {layer}: {method} and {clash[0]} cannot both apply to one layer "
                                  f"(both decide how its weights are stored); turn one of them off for this layer")


def weighted_layers(module: nn.Module) -> dict[str, nn.Module]:
    """Named submodules that own a ``weight`` parameter (what a recipe can target)."""
    return {name: m for name, m in module.named_modules()
            if name and isinstance(getattr(m, "weight", None), nn.Parameter)}


def resolve(recipe: Recipe, state: CompressionState, registry: MethodRegistry,
            skip_methods: Iterable[str] = (), strict_names: bool = True
            ) -> list[tuple[CompressionMethod, dict[str, Any]]]:
    """Validated, typed configs: ``[(method, {layer: config})]`` in application order.

    A method enabled globally or by a glob silently skips layers it does not
    apply to (e.g. BatchNorm); naming such a layer exactly is an error.
    ``skip_methods`` and ``strict_names`` are passed to :func:`validate`.
    """
    recipe = flatten_stages(recipe)  # a staged recipe: every stage's methods at once (fine-tuning plans)
    modules = weighted_layers(state.module)
    skip = set(skip_methods)
    validate(recipe, list(modules), registry, skip, strict_names)
    per_method: dict[str, dict[str, Any]] = {}
    for layer, methods in layer_plan(recipe, modules).items():
        for name, opts in methods.items():
            if name in skip:
                continue
            method = registry.get(name)
            if not method.applies_to(modules[layer]):
                named = any(not is_glob(p) and name in recipe.layers[p] for p in matching_patterns(recipe, layer))
                if named:
                    raise RecipeError(f"{name} does not apply to layer {layer} "
                                      f"({type(modules[layer]).__name__})")
                continue
            config = make_config(method.config_class, opts, where=f"layer {layer}, {name}")
            per_method.setdefault(name, {})[layer] = config
    ordered = [m for m in registry.methods() if m.name in per_method]
    return [(m, per_method[m.name]) for m in ordered]


def describe_resolution(plan: list[tuple[CompressionMethod, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """A resolved plan as plain data ``{method: {layer: options}}`` (for logs and the GUI)."""
    return {m.name: {layer: config_to_dict(cfg) for layer, cfg in configs.items()} for m, configs in plan}


_OFF = ("off", "none", "no", "false", "disable", "disabled", "null")
_ON = ("on", "yes", "true", "enable", "enabled")


def parse_option_value(text: str) -> Any:
    """A command-line value as YAML reads it (0.5 -> float, 4 -> int, null -> None)."""
    try:
        value = load_yaml(text, "the value", RecipeError)
    except RecipeError:
        return text
    return value if value is None or isinstance(value, (bool, int, float, str)) else text


_scalar = parse_option_value  # older name, still imported by the CLI and sweeps


def parse_method_options(text: str, where: str = "option") -> LayerOverride:
    """Parse ``"prune.sparsity=0.5,cluster.bits=4,quantize=off"`` into ``{method: options | None}``."""
    out: LayerOverride = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        method, dot, option = key.partition(".")
        if not method or (dot and not option):
            raise RecipeError(f"{where}: cannot read {item!r}; write method.option=value, e.g. prune.sparsity=0.5")
        if not dot:
            state = value.strip().lower() if eq else "on"
            if state in _OFF:
                out[method] = None
            elif state in _ON:
                out[method] = dict(out.get(method) or {})
            else:
                raise RecipeError(f"{where}: {method}={value} must be on or off")
            continue
        if not eq:
            raise RecipeError(f"{where}: {key} needs a value, e.g. {key}=4")
        opts = out.get(method) or {}
        opts[option] = parse_option_value(value.strip())
        out[method] = opts
    if not out:
        raise RecipeError(f"{where}: no method options given")
    return out


def parse_layer_option(text: str) -> tuple[str, LayerOverride]:
    """Parse ``"features.0:prune.sparsity=0.5,cluster.bits=4"`` into ``(pattern, override)``.

    ``method=off`` disables a method for the layers, ``method`` alone enables it
    with its defaults; the pattern may be a glob (``"classifier.*:cluster=off"``).
    """
    pattern, colon, rest = text.partition(":")
    pattern = pattern.strip()
    if not colon or not pattern or not rest.strip():
        raise RecipeError(f"cannot read the layer option {text!r}; write LAYER:method.option=value,... "
                          "e.g. features.0:prune.sparsity=0.5")
    return pattern, parse_method_options(rest, where=f"layer option {text!r}")


def build_recipe_from_cli(prune: Optional[float] = None, threshold: Optional[float] = None,
                          cluster_bits: Optional[int] = None, quant_bits: Optional[int] = None,
                          layers: Sequence[str] = (), *, scope: str = "layer",
                          quant_scheme: Optional[str] = None, options: Sequence[str] = ()) -> Recipe:
    """A recipe from command-line flags.

    ``prune`` is a sparsity, ``threshold`` a magnitude threshold (not both),
    ``scope`` ``layer`` or ``global``; ``layers`` holds
    :func:`parse_layer_option` strings and ``options`` global
    ``method.option=value`` strings applied last.
    """
    if prune is not None and threshold is not None:
        raise RecipeError("give either a pruning sparsity or a pruning threshold, not both")
    recipe = Recipe()
    if prune is not None:
        recipe.methods["prune"] = {"mode": "sparsity", "sparsity": prune, "scope": scope}
    elif threshold is not None:
        recipe.methods["prune"] = {"mode": "threshold", "threshold": threshold}
    if cluster_bits is not None:
        recipe.methods["cluster"] = {"bits": cluster_bits}
    if quant_bits is not None or quant_scheme is not None:
        q: MethodOptions = {}
        if quant_bits is not None:
            q["bits"] = quant_bits
        if quant_scheme is not None:
            q["scheme"] = quant_scheme
        recipe.methods["quantize"] = q
    for text in options:
        for method, opts in parse_method_options(text, where=f"option {text!r}").items():
            if opts is None:
                recipe.methods.pop(method, None)
            else:
                recipe.methods[method] = {**recipe.methods.get(method, {}), **opts}
    for text in layers:
        pattern, override = parse_layer_option(text)
        entry = recipe.layers.setdefault(pattern, {})
        for method, opts in override.items():
            entry[method] = None if opts is None else {**(entry.get(method) or {}), **opts}
    return recipe
