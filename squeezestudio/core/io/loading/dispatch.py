"""``load_model``: open any supported model file as a :class:`ModelHandle`.

The format is sniffed from the content (see :mod:`.detect`). Weights-only
formats load directly; formats that execute code (pickled modules,
TorchScript, ``model.py:factory``) load only when the caller passes
``trust=True``, and otherwise fail with :class:`UntrustedCodeError` before any
of the file's code runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from squeezestudio.core.compression.codec import load_sqz
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.errors import ModelLoadError, UntrustedCodeError
from squeezestudio.core.io.loading import checkpoint, detect, trusted
from squeezestudio.core.io.loading.finishing import finish_handle
from squeezestudio.core.io.loading.tensor_checks import check_tensor_budget, refuse_unusable_dtypes
from squeezestudio.core.io.loading.onnx_import import load_onnx
from squeezestudio.core.model.handle import InputSpec, ModelHandle

PathLike = Union[str, "os.PathLike[str]"]
_TRUST_HINT = "pass --trust if you trust its author"


def _torch_object(path: Path, trust: bool) -> tuple[Any, bool]:
    """Unpickle a torch file weights-only; unsafely only if ``trust``. Returns (object, ran_code)."""
    try:
        return checkpoint.safe_torch_load(path), False
    except UntrustedCodeError:
        if not trust:
            raise
    return trusted.unsafe_torch_load(path), True


def _read_weights(path: Path, trust: bool) -> dict[str, torch.Tensor]:
    """The state_dict in a separate weights file (for factories, pickles and TorchScript)."""
    kind = detect.detect_format(path)
    if kind == detect.SAFETENSORS:
        tensors, _ = checkpoint.read_safetensors(path)
    elif kind in (detect.TORCH_ZIP, detect.TORCH_LEGACY):
        obj, _ = _torch_object(path, trust)
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        tensors, _ = checkpoint.split_checkpoint(obj, path.name)
    else:
        raise ModelLoadError(f"the weights file {path.name} must be a state_dict or safetensors "
                             f"file, not {kind}")
    return tensors


def _with_weights(module: nn.Module, weights: Optional[PathLike], trust: bool,
                  warnings: list[str]) -> nn.Module:
    if weights is not None:
        path = Path(weights).expanduser()
        tensors = check_tensor_budget(_read_weights(path, trust), path.stat().st_size, path.name)
        refuse_unusable_dtypes(tensors, path.name)
        tensors = checkpoint.to_float32(tensors, warnings)
        checkpoint.load_tensors_into(module, tensors, path.name)
    return module


def _load_python(file: Path, factory: str, *, trust: bool, weights: Optional[PathLike],
                 arch_kwargs: Optional[Mapping[str, Any]],
                 input_spec: Optional[InputSpec]) -> ModelHandle:
    if not trust:
        raise UntrustedCodeError(f"{file.name}:{factory} is Python code and loading it runs that "
                                 f"code; {_TRUST_HINT}")
    warnings: list[str] = []
    module = trusted.load_python_factory(file, factory, arch_kwargs)
    module = _with_weights(module, weights, trust, warnings)
    handle = trusted.handle_from_module(module, path=file, source_format="python",
                                        input_spec=input_spec, warnings=warnings)
    handle.name = Path(weights).stem if weights is not None else factory
    return handle


def _load_file(path: Path, *, arch: Optional[str], arch_kwargs: Optional[Mapping[str, Any]],
               trust: bool, weights: Optional[PathLike],
               input_spec: Optional[InputSpec], registry: MethodRegistry,
               preprocess: Optional[Mapping[str, Any]] = None) -> ModelHandle:
    kind = detect.detect_format(path)
    if weights is not None and kind not in (detect.TORCH_ZIP, detect.TORCH_LEGACY, detect.TORCHSCRIPT):
        raise ModelLoadError(f"separate weights only apply to Python, pickled or TorchScript "
                             f"models; {path.name} already holds its weights")
    if kind == detect.TORCHSCRIPT:
        if not trust:
            raise UntrustedCodeError(f"{path.name} is a TorchScript program and loading it runs "
                                     f"code from the file; {_TRUST_HINT}")
        warnings: list[str] = []
        module = _with_weights(trusted.load_torchscript(path), weights, trust, warnings)
        return trusted.handle_from_module(module, path=path, source_format="torchscript",
                                          input_spec=input_spec, warnings=warnings)
    if kind in (detect.TORCH_ZIP, detect.TORCH_LEGACY):
        obj, ran_code = _torch_object(path, trust)
        if isinstance(obj, nn.Module):
            warnings = []
            module = _with_weights(obj, weights, trust, warnings)
            return trusted.handle_from_module(module, path=path, source_format="pickle",
                                              input_spec=input_spec, warnings=warnings)
        if weights is not None:
            raise ModelLoadError(f"{path.name} is a state_dict, not a model; separate weights "
                                 f"do not apply")
        tensors, meta = checkpoint.split_checkpoint(obj, path.name)
        handle = checkpoint.handle_from_tensors(tensors, meta, path=path, source_format="state_dict",
                                                arch=arch, arch_kwargs=arch_kwargs,
                                                input_spec=input_spec, registry=registry)
        handle.trusted_code = ran_code
        return handle
    if kind == detect.SAFETENSORS:
        tensors, meta = checkpoint.read_safetensors(path)
        return checkpoint.handle_from_tensors(tensors, meta, path=path, source_format="safetensors",
                                              arch=arch, arch_kwargs=arch_kwargs,
                                              input_spec=input_spec, registry=registry)
    if kind == detect.SQZ:
        return load_sqz(path, registry=registry).handle
    return load_onnx(path, preprocess)


def load_model(path: PathLike, *, arch: Optional[str] = None,
               arch_kwargs: Optional[Mapping[str, Any]] = None,
               class_names: Optional[Sequence[str]] = None, trust: bool = False,
               weights: Optional[PathLike] = None,
               input_spec: Optional[InputSpec] = None, registry: MethodRegistry,
               preprocess: Optional[Mapping[str, Any]] = None) -> ModelHandle:
    """Open ``path`` (a model file, or ``"model.py:factory"``) as a :class:`ModelHandle`.

    ``registry`` holds the compression methods that rebuild what a .sqz file
    or a SqueezeStudio checkpoint records (architecture modifications, custom
    encodings); the CLI and the GUI pass the application's registry.

    ``arch`` names a zoo architecture for a bare state_dict (or is itself
    ``"model.py:factory"``, with ``path`` then the weights); ``arch_kwargs``
    override ``num_classes``/``in_channels``/``input_size`` (or are passed to
    the factory). ``trust`` allows formats that run code. ``weights`` is a
    state_dict/safetensors file loaded into a factory-built, pickled or
    TorchScript model. ``class_names`` and ``input_spec`` override what the
    file records. ``preprocess`` holds the user's preprocessing options
    (parsed by :func:`~squeezestudio.core.model.input_spec.parse_preprocess_options`),
    applied over what the file says and checked against the model. Raises a
    :class:`ModelLoadError` subclass (or :class:`PreprocessingError`) on bad input.
    """
    python_arch = detect.split_python_target(arch) if arch is not None else None
    target = detect.split_python_target(path)
    if python_arch is not None:
        if weights is not None or target is not None:
            raise ModelLoadError("give either a model file or a model.py:factory architecture "
                                 "with one weights file, not both")
        target, weights = python_arch, path
    if target is not None:
        file, factory = target
        handle = _load_python(file.expanduser(), factory, trust=trust, weights=weights,
                              arch_kwargs=arch_kwargs, input_spec=input_spec)
    else:
        handle = _load_file(Path(path).expanduser(), arch=arch, arch_kwargs=arch_kwargs,
                            trust=trust, weights=weights, input_spec=input_spec, registry=registry,
                            preprocess=preprocess)
        if arch is not None and handle.source_format not in ("state_dict", "safetensors"):
            handle.warnings.append(f"the architecture {arch!r} was ignored: a "
                                   f"{handle.source_format} file defines its own")
    return finish_handle(handle, class_names=class_names, input_spec=input_spec, preprocess=preprocess)
