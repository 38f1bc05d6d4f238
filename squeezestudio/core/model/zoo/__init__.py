"""Built-in architectures: SqueezeNet, AlexNet, VGG, ResNet-18, the LeNets and CNDS-8.

``build_model`` makes a freshly initialised module; ``zoo_handle`` wraps it in
a :class:`ModelHandle` whose ``architecture`` lets it be rebuilt later (for
example when a .sqz file is opened). The ImageNet models use torchvision's
parameter names so torchvision checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.handle import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ArchitectureSpec,
    InputSpec,
    ModelHandle,
    default_class_names,
)
from squeezestudio.core.model.zoo.registry import ZOO_ENTRIES, ZOO_NAMES, ZooEntry

__all__ = ["ZOO_NAMES", "ZooEntry", "zoo_entry", "resolve_zoo_kwargs", "build_model",
           "default_input_spec", "zoo_handle"]


def zoo_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; a clear error listing the choices otherwise."""
    entry = ZOO_ENTRIES.get(str(name).strip().lower())
    if entry is None:
        raise ModelLoadError(f"unknown architecture {name!r}; choose one of {', '.join(ZOO_NAMES)}")
    return entry


def resolve_zoo_kwargs(name: str, num_classes: Optional[int] = None,
                       in_channels: Optional[int] = None,
                       input_size: Optional[int] = None) -> dict[str, int]:
    """Fill unspecified arguments with the architecture's defaults and check them.

    The result is exactly what ``ArchitectureSpec.kwargs`` stores, so
    ``build_model(name, **kwargs)`` rebuilds the same shapes.
    """
    entry = zoo_entry(name)
    kwargs = {
        "num_classes": entry.default_num_classes if num_classes is None else num_classes,
        "in_channels": entry.default_in_channels if in_channels is None else in_channels,
        "input_size": entry.default_input_size if input_size is None else input_size,
    }
    for key, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelLoadError(f"{key} must be a positive whole number, not {value!r}")
    if kwargs["input_size"] < entry.min_input_size:
        raise ModelLoadError(
            f"{entry.name} needs inputs of at least {entry.min_input_size}x{entry.min_input_size} "
            f"pixels, not {kwargs['input_size']}x{kwargs['input_size']}; use a larger input_size")
    return kwargs


def build_model(name: str, num_classes: Optional[int] = None, in_channels: Optional[int] = None,
                input_size: Optional[int] = None) -> nn.Module:
    """A freshly initialised zoo module; ``None`` arguments take the architecture's defaults.

    Build under ``with torch.device("meta"):`` to get shapes without memory
    (how the loader compares a checkpoint against every architecture).
    """
    entry = zoo_entry(name)
    kw = resolve_zoo_kwargs(entry.name, num_classes, in_channels, input_size)
    return entry.builder(kw["num_classes"], kw["in_channels"], kw["input_size"])


def input_spec_for(channels: int, size: int, mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None) -> InputSpec:
    """ImageNet statistics for RGB input, (0.5, 0.5) per channel otherwise, unless given."""
    if mean is None:
        mean = IMAGENET_MEAN if channels == 3 else (0.5,) * channels
    if std is None:
        std = IMAGENET_STD if channels == 3 else (0.5,) * channels
    mean_t, std_t = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean_t) != channels or len(std_t) != channels:
        raise ModelLoadError(f"mean and std need one value per input channel ({channels}), "
                             f"got {len(mean_t)} and {len(std_t)}")
    if any(s <= 0 for s in std_t):
        raise ModelLoadError("every std value must be positive")
    return InputSpec(channels=channels, height=size, width=size, mean=mean_t, std=std_t)


def default_input_spec(name: str, in_channels: Optional[int] = None,
                       input_size: Optional[int] = None,
                       mean: Optional[Sequence[float]] = None,
                       std: Optional[Sequence[float]] = None) -> InputSpec:
    """The input a zoo architecture expects by default (e.g. 3x224x224 ImageNet-normalised)."""
    kw = resolve_zoo_kwargs(name, None, in_channels, input_size)
    return input_spec_for(kw["in_channels"], kw["input_size"], mean, std)


def zoo_handle(name: str, num_classes: Optional[int] = None, in_channels: Optional[int] = None,
               input_size: Optional[int] = None, class_names: Optional[Sequence[str]] = None,
               mean: Optional[Sequence[float]] = None,
               std: Optional[Sequence[float]] = None) -> ModelHandle:
    """A freshly initialised zoo model with its input spec, class names and architecture.

    ``num_classes`` defaults to ``len(class_names)`` when only names are given.
    """
    entry = zoo_entry(name)
    names = [str(c) for c in class_names] if class_names is not None else None
    if names is not None and num_classes is None:
        num_classes = len(names)
    kw = resolve_zoo_kwargs(entry.name, num_classes, in_channels, input_size)
    if names is not None and len(names) != kw["num_classes"]:
        raise ModelLoadError(f"{len(names)} class names were given for a model with "
                             f"{kw['num_classes']} classes")
    module = entry.builder(kw["num_classes"], kw["in_channels"], kw["input_size"])
    return ModelHandle(
        module=module,
        name=entry.name,
        input_spec=input_spec_for(kw["in_channels"], kw["input_size"], mean, std),
        class_names=names if names is not None else default_class_names(kw["num_classes"]),
        source_format="zoo",
        architecture=ArchitectureSpec(kind="zoo", name=entry.name, kwargs=dict(kw)),
    )
