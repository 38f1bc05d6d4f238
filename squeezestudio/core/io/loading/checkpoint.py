"""Weights-only checkpoints: torch state_dicts and safetensors files.

These formats hold tensors and plain values only, so they never run code:
torch files are read with ``torch.load(weights_only=True)``, and a file that
the weights-only unpickler refuses is reported as needing trust, never retried
unsafely here (``dispatch`` retries only when the user passed ``trust``).
The architecture comes from ``--arch``, else from our embedded metadata, else
from matching the tensors against the zoo.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.compression.replay import build_module
from squeezestudio.core.errors import ArchitectureMismatchError, ModelLoadError, UntrustedCodeError
from squeezestudio.core.io.loading.detect import read_safetensors_header, safetensors_metadata
from squeezestudio.core.io.loading.finishing import count_outputs
from squeezestudio.core.io.loading.infer import (
    compare_shapes,
    fit_zoo_architecture,
    infer_zoo_architecture,
    shapes_of,
)
from squeezestudio.core.io.loading.metadata import METADATA_KEY, CheckpointMetadata, parse_metadata
from squeezestudio.core.io.loading.pickle_budget import check_pickle_structure
from squeezestudio.core.io.loading.tensor_checks import (
    check_tensor_budget,
    check_weight_dtypes,
    refuse_unusable_dtypes,
)
from squeezestudio.core.model.handle import (
    ArchitectureSpec,
    InputSpec,
    ModelHandle,
    default_class_names,
)
from squeezestudio.core.model.input_spec import SIZE_FLAGS
from squeezestudio.core.model.outputs import restore_output_semantics
from squeezestudio.core.model.zoo import ZOO_ENTRIES, ZooEntry, input_spec_for, zoo_entry

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
"""Keys under which training scripts commonly nest the state_dict."""

STRIPPED_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DataParallel/DistributedDataParallel and torch.compile."""

_GLOBAL_RE = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_REASON_RE = re.compile(r"WeightsUnpickler error: ([^\n]*)")


def safe_torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with errors turned into plain sentences.

    Raises :class:`UntrustedCodeError` when the file needs code to unpickle
    (a whole pickled module, numpy objects, a malicious payload) and
    :class:`ModelLoadError` when it is truncated or corrupt.
    """
    from safetensors import SafetensorError  # torch.load also reads safetensors content, and raises its errors

    check_pickle_structure(path, path.name)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except SafetensorError as exc:
        raise ModelLoadError(f"{path.name} is a damaged safetensors file ({str(exc)[:160]})") from None
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _GLOBAL_RE.search(text)
        reason = _REASON_RE.search(text)
        what = (f"pickled Python objects ({found.group(1)})" if found else
                f"pickle instructions the safe loader refuses ({reason.group(1).strip()[:120]})"
                if reason else "pickled Python objects")
        raise UntrustedCodeError(
            f"{path.name} contains {what} and loading it could run code from the file, so it was "
            f"not opened; pass --trust if you trust its author, or save the model's state_dict "
            f"instead") from exc
    except (EOFError, RuntimeError, ValueError, OSError, MemoryError, AttributeError,
            IndexError, KeyError, TypeError, AssertionError, UnicodeDecodeError) as exc:  # the unpickler's own checks
        raise ModelLoadError(f"{path.name} is truncated or corrupt and cannot be read as a "
                             f"PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from exc


def _strip_prefixes(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed and tensors:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
                changed = True
    return tensors


def _tensor_dict(obj: Mapping[Any, Any]) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def split_checkpoint(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], Optional[CheckpointMetadata]]:
    """The state_dict and our metadata (if any) inside an unpickled checkpoint object.

    Accepts a bare state_dict, ``{"state_dict": ...}``/``{"model": ...}``-style
    wrappers and DataParallel ``module.`` prefixes.
    """
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"{source} holds a {type(obj).__name__}, not a state_dict of "
                             f"weight tensors")
    meta = parse_metadata(obj[METADATA_KEY], source) if METADATA_KEY in obj else None
    inner: Mapping[Any, Any] = obj
    for key in WRAPPER_KEYS:
        candidate = obj.get(key)
        if isinstance(candidate, Mapping) and _tensor_dict(candidate):
            inner = candidate
            break
    tensors = _tensor_dict(inner)
    if not tensors:
        keys = ", ".join(str(k) for k in list(obj)[:5])
        raise ModelLoadError(f"{source} holds no weight tensors (its top-level keys are: "
                             f"{keys or 'none'})")
    return _strip_prefixes(tensors), meta


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], Optional[CheckpointMetadata]]:
    """Tensors and our metadata (if any) of a safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta_raw = safetensors_metadata(read_safetensors_header(path)).get(METADATA_KEY)
    meta = parse_metadata(meta_raw, path.name) if meta_raw is not None else None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path.name} is truncated or corrupt and cannot be read as a "
                             f"safetensors file ({str(exc)[:160]})") from exc
    if not tensors:
        raise ModelLoadError(f"{path.name} holds no weight tensors")
    return _strip_prefixes(dict(tensors)), meta


def to_float32(tensors: dict[str, torch.Tensor], warnings: list[str]) -> dict[str, torch.Tensor]:
    """Convert half/bfloat16/double tensors to float32 (what evaluation and compression use)."""
    converted = {k: v for k, v in tensors.items()
                 if v.is_floating_point() and v.dtype != torch.float32}
    if converted:
        dtypes = sorted({str(v.dtype).replace("torch.", "") for v in converted.values()})
        warnings.append(f"{len(converted)} tensors stored as {'/'.join(dtypes)} were converted "
                        f"to float32")
    return {k: (v.float() if k in converted else v) for k, v in tensors.items()}


def load_tensors_into(module: nn.Module, tensors: Mapping[str, torch.Tensor], source: str,
                      assign: bool = False) -> None:
    """Strictly load ``tensors`` into ``module``; the error lists every kind of difference.

    With ``assign`` the checkpoint's tensors become the parameters (no copy),
    which is how a module built on the meta device is filled.
    """
    expected = module.state_dict()
    _require_fit(expected, tensors, source)
    check_weight_dtypes(expected, tensors, source)
    full = dict(tensors)
    for key, value in expected.items():  # BatchNorm counters absent from old checkpoints
        if key not in full:
            full[key] = torch.zeros(value.shape, dtype=value.dtype)
    module.load_state_dict(full, strict=True, assign=assign)


def _require_fit(expected: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], source: str) -> None:
    diff = compare_shapes(shapes_of(expected), shapes_of(tensors))
    if not diff.ok:
        raise ArchitectureMismatchError(f"the weights in {source} do not fit the model: "
                                        f"{diff.describe()}")


def _planned_state(build: Any) -> Optional[dict[str, torch.Tensor]]:
    """The state_dict ``build()`` would produce, built on the meta device (no memory); None if it cannot."""
    try:
        with torch.device("meta"):
            return build().state_dict()
    except ModelLoadError:
        raise
    except Exception:  # noqa: BLE001 - a builder needing real tensors; the real build reports its errors
        return None


def build_for_spec(spec: ArchitectureSpec, tensors: Mapping[str, torch.Tensor],
                   source: str, registry: MethodRegistry) -> nn.Module:
    """The module ``spec`` describes, holding ``tensors`` as its weights.

    ``registry`` replays the architecture's modifications (e.g. Fire substitution).
    """
    if spec.kind == "zoo" and not spec.modifications:
        entry = zoo_entry(spec.name)
        kw = spec.kwargs
        try:
            with torch.device("meta"):
                module = entry.builder(int(kw["num_classes"]), int(kw["in_channels"]),
                                       int(kw["input_size"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"the architecture recorded in {source} is malformed ({exc})") from exc
        load_tensors_into(module, tensors, source, assign=True)
        return module
    planned = _planned_state(lambda: build_module(spec, registry=registry))
    if planned is not None:  # refuse a description that does not fit the weights before allocating it
        _require_fit(planned, tensors, source)
    module = build_module(spec, registry=registry)
    load_tensors_into(module, tensors, source)
    return module


def _renaming_entries(arch: Optional[str], meta: Optional[CheckpointMetadata]) -> list[ZooEntry]:
    """The zoo entries whose older key names a checkpoint may use.

    The one it is loaded as (``--arch`` or its recorded zoo architecture); every
    entry when the architecture is to be inferred from the keys, since old
    names would otherwise match nothing; none for a recorded non-zoo model.
    """
    if arch is not None:
        return [zoo_entry(arch)]
    if meta is not None and meta.architecture is not None:
        spec = meta.architecture
        return [ZOO_ENTRIES[spec.name]] if spec.kind == "zoo" and spec.name in ZOO_ENTRIES else []
    return list(ZOO_ENTRIES.values())


def with_current_names(tensors: dict[str, torch.Tensor], entries: list[ZooEntry], source: str,
                       warnings: list[str]) -> dict[str, torch.Tensor]:
    """``tensors`` with the keys of an older release of one of ``entries`` renamed (e.g. torchvision's
    pre-0.3 DenseNet ``norm.1``); the first entry that renames anything wins, and the user is told."""
    for entry in entries:
        if entry.current_keys is None:
            continue
        renamed = entry.current_keys(tensors)
        count = sum(1 for key in tensors if key not in renamed)
        if count:
            warnings.append(f"{source} uses the parameter names of an older {entry.title} release; "
                            f"{count} tensors were renamed to the current names")
            return renamed
    return tensors


def _recorded_class_names(meta: Optional[CheckpointMetadata], num_classes: Optional[int],
                          warnings: list[str]) -> list[str]:
    """Class names from our metadata, dropped (with a warning) if they do not fit the model."""
    names = list(meta.class_names) if meta is not None and meta.class_names else []
    if names and num_classes is not None and len(names) != num_classes:
        warnings.append(f"the file names {len(names)} classes but the model has {num_classes} "
                        f"outputs; the names were ignored")
        return []
    return names


def handle_from_tensors(tensors: dict[str, torch.Tensor], meta: Optional[CheckpointMetadata], *,
                        path: Path, source_format: str, arch: Optional[str] = None,
                        arch_kwargs: Optional[Mapping[str, Any]] = None,
                        input_spec: Optional[InputSpec] = None, registry: MethodRegistry) -> ModelHandle:
    """Build the handle for a state_dict: choose the architecture, load, fill in metadata.

    ``class_names`` are those recorded in the file (possibly none); ``dispatch``
    applies the caller's names or defaults afterwards.
    """
    source = path.name
    warnings: list[str] = []
    tensors = check_tensor_budget(tensors, path.stat().st_size, source)
    refuse_unusable_dtypes(tensors, source)
    tensors = to_float32(tensors, warnings)
    tensors = with_current_names(tensors, _renaming_entries(arch, meta), source, warnings)
    shapes = shapes_of(tensors)
    inferred = False
    if arch is not None:
        kwargs = fit_zoo_architecture(arch, shapes, arch_kwargs or {}, source)
        spec = ArchitectureSpec(kind="zoo", name=zoo_entry(arch).name, kwargs=kwargs)
    elif meta is not None and meta.architecture is not None and not (
            arch_kwargs and meta.architecture.kind == "zoo"):
        spec = meta.architecture
    elif meta is not None and meta.architecture is not None:
        name = meta.architecture.name
        overrides = {**meta.architecture.kwargs, **dict(arch_kwargs or {})}
        kwargs = fit_zoo_architecture(name, shapes, overrides, source)
        spec = ArchitectureSpec(kind="zoo", name=name, kwargs=kwargs)
    else:
        if arch_kwargs:
            raise ModelLoadError("architecture arguments need an architecture: pass --arch too")
        name, kwargs = infer_zoo_architecture(shapes, source)
        spec = ArchitectureSpec(kind="zoo", name=name, kwargs=kwargs)
        inferred = True
    module = build_for_spec(spec, tensors, source, registry).eval()
    zoo_kw = spec.kwargs if spec.kind == "zoo" else {}
    if input_spec is None and meta is not None and meta.input_spec is not None and not inferred:
        input_spec = meta.input_spec
    if input_spec is None and zoo_kw:
        input_spec = input_spec_for(int(zoo_kw["in_channels"]), int(zoo_kw["input_size"]))
        if not zoo_entry(spec.name).size_dependent and "input_size" not in (arch_kwargs or {}):
            warnings.append(f"{source} does not record its input size; assuming "
                            f"{zoo_kw['input_size']}x{zoo_kw['input_size']} pixels (set {SIZE_FLAGS}, "
                            f"or Model input in the app, if the model was trained on another)")
    if input_spec is None:
        raise ModelLoadError(f"{source} does not record its input shape; pass an input spec")
    names = _recorded_class_names(meta, zoo_kw.get("num_classes"), warnings)
    if not names and zoo_kw:
        names = default_class_names(int(zoo_kw["num_classes"]))
    elif not names:
        try:
            names = default_class_names(count_outputs(module, input_spec))
        except Exception as exc:  # noqa: BLE001 - a rebuilt graph may fail in many ways
            raise ModelLoadError(f"the model rebuilt from {source} does not run on its recorded "
                                 f"input shape ({str(exc)[:160]})") from exc
    handle = ModelHandle(module=module, name=(meta.name if meta and meta.name else path.stem),
                         input_spec=input_spec, class_names=names, source_format=source_format,
                         source_path=path, architecture=spec, warnings=warnings)
    if meta is not None and meta.outputs is not None:
        try:
            restore_output_semantics(handle, meta.outputs)
        except ValueError as exc:
            raise ModelLoadError(f"the SqueezeStudio metadata in {source} is malformed ({exc})") from None
    return handle
