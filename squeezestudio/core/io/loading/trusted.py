"""Formats that run code when loaded: pickled modules, TorchScript, ``model.py:factory``.

Callers reach these functions only when the user passed ``trust`` (the
dispatcher refuses otherwise with :class:`UntrustedCodeError`). Such models
carry no metadata, so the input shape is guessed from the first weight and
confirmed by running one example through the model, and the architecture is
described by :mod:`squeezestudio.core.model.architecture_spec` when possible.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from squeezestudio.core.errors import ArchitectureMismatchError, ModelLoadError
from squeezestudio.core.io.loading.finishing import count_outputs
from squeezestudio.core.io.loading.infer import infer_zoo_architecture, module_shapes
from squeezestudio.core.model.architecture_spec import describe_architecture
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle, default_class_names
from squeezestudio.core.model.zoo import input_spec_for


def unsafe_torch_load(path: Path) -> Any:
    """``torch.load(weights_only=False)``: runs the file's pickled code. Trusted files only."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"{path.name} needs Python code that is not installed here "
                             f"({exc}); import or install the package that defines the model") from exc
    except Exception as exc:  # noqa: BLE001 - arbitrary user pickles fail in arbitrary ways
        raise ModelLoadError(f"{path.name} could not be unpickled ({type(exc).__name__}: "
                             f"{str(exc)[:160]})") from exc


def load_torchscript(path: Path) -> nn.Module:
    """A TorchScript module (``torch.jit.load`` has no safe mode: trusted files only)."""
    try:
        with warnings.catch_warnings():
            # torch 2.13 deprecates torch.jit.load in favour of torch.export, which cannot read
            # TorchScript files: there is no other way to open them, so the warning is silenced here.
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*is deprecated", category=DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - the TorchScript runtime raises many types
        raise ModelLoadError(f"{path.name} could not be loaded as TorchScript "
                             f"({type(exc).__name__}: {str(exc)[:160]})") from exc


def _import_user_file(file: Path) -> Any:
    if not file.is_file():
        raise ModelLoadError(f"model definition {file} does not exist")
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    module_name = f"_squeezestudio_user_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{file} cannot be imported as a Python module")
    user_module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = user_module  # so its classes can be pickled and copied
    try:
        spec.loader.exec_module(user_module)
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        sys.modules.pop(module_name, None)
        raise ModelLoadError(f"running {file.name} failed ({type(exc).__name__}: "
                             f"{str(exc)[:160]})") from exc
    return user_module


def load_python_factory(file: Path, factory: str,
                        kwargs: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """Import ``file`` and return ``factory(**kwargs)``, which must be an ``nn.Module``.

    The file's folder is on ``sys.path`` while it runs, so it can import its siblings.
    """
    folder = str(file.resolve().parent)
    sys.path.insert(0, folder)
    try:
        user_module = _import_user_file(file)
        build = getattr(user_module, factory, None)
        if not callable(build):
            raise ModelLoadError(f"{file.name} has no function called {factory}")
        try:
            module = build(**dict(kwargs or {}))
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            raise ModelLoadError(f"{file.name}:{factory}() failed ({type(exc).__name__}: "
                                 f"{str(exc)[:160]})") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"{file.name}:{factory}() returned a {type(module).__name__}, "
                             f"not a torch.nn.Module")
    return module


def _zoo_fallback(module: nn.Module) -> Optional[ArchitectureSpec]:
    """A zoo spec for a pickled instance of one of our own zoo classes."""
    if not type(module).__module__.startswith("squeezestudio.core.model.zoo"):
        return None
    try:
        name, kwargs = infer_zoo_architecture(module_shapes(module), "the model")
    except ArchitectureMismatchError:
        return None
    return ArchitectureSpec(kind="zoo", name=name, kwargs=kwargs)


def describe_or_none(module: nn.Module, warnings: list[str]) -> Optional[ArchitectureSpec]:
    """The module's :class:`ArchitectureSpec`, or None with a warning saying what that costs."""
    cost = "compressed .sqz files of it cannot be reopened without the original model file"
    zoo_spec = _zoo_fallback(module)
    if zoo_spec is not None:  # one of our own zoo classes: the compact, exact description
        return zoo_spec
    try:
        return describe_architecture(module, fallback=None)
    except Exception as exc:  # noqa: BLE001 - describing arbitrary user modules may fail anyhow
        warnings.append(f"the model's architecture could not be recorded ({str(exc)[:120]}); {cost}")
        return None


def candidate_input_specs(module: nn.Module) -> list[InputSpec]:
    """Plausible inputs, most likely first, from the first weight in the state_dict.

    A 4-D first weight is a convolution (its dim 1 is the channel count); a
    2-D one is a linear layer over a flattened square image.
    """
    for key, value in module.state_dict().items():
        if not key.endswith("weight") or value.dim() not in (2, 4):
            continue
        if value.dim() == 4:
            channels = int(value.shape[1])
            sizes = (224, 32, 28, 64, 96, 128, 299, 16, 48, 12, 8) if channels == 3 else \
                (28, 32, 8, 64, 224, 16, 12, 48, 96, 128)
            return [input_spec_for(channels, s) for s in sizes]
        features = int(value.shape[1])
        for channels in (1, 3):
            side = int(round((features / channels) ** 0.5))
            if side * side * channels == features:
                return [input_spec_for(channels, side)]
        break
    return [input_spec_for(3, 224)]


def handle_from_module(module: nn.Module, *, path: Path, source_format: str,
                       input_spec: Optional[InputSpec] = None,
                       warnings: Optional[list[str]] = None) -> ModelHandle:
    """Wrap a module that was built by running trusted code; ``trusted_code`` is set."""
    warnings = list(warnings or [])
    module.eval()
    candidates = [input_spec] if input_spec is not None else candidate_input_specs(module)
    chosen, outputs, error = candidates[0], None, ""
    for spec in candidates:
        try:
            outputs = count_outputs(module, spec)
        except Exception as exc:  # noqa: BLE001 - any failure means "not this input shape"
            error = error or f"{type(exc).__name__}: {str(exc)[:160]}"
            continue
        chosen = spec
        break
    shape = f"{chosen.channels}x{chosen.height}x{chosen.width}"
    if outputs is None:
        raise ModelLoadError(f"the model in {path.name} did not accept a test input of shape "
                             f"{shape} ({error}); give its input shape explicitly")
    if input_spec is None:
        warnings.append(f"{path.name} does not record its input shape; assuming {shape} "
                        f"(set the input shape if the model expects another)")
    return ModelHandle(module=module, name=path.stem, input_spec=chosen,
                       class_names=default_class_names(outputs), source_format=source_format,
                       source_path=path, trusted_code=True,
                       architecture=describe_or_none(module, warnings), warnings=warnings)
