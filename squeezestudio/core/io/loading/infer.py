"""Match a state_dict against the zoo: recognise the architecture, or say why it does not fit.

A bare state_dict only holds names and shapes. The zoo's architectures have
distinctive names (torchvision's), and the first and last weights reveal the
input channels and the number of classes, so a checkpoint can usually be
recognised without ``--arch``. When nothing fits, the error lists the missing,
unexpected and wrongly shaped tensors of the closest architecture, which is
what a user needs to fix a renamed or modified model.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import torch
from torch import nn

from squeezestudio.core.errors import ArchitectureMismatchError, ModelLoadError
from squeezestudio.core.model.zoo import ZOO_NAMES, resolve_zoo_kwargs, zoo_entry
from squeezestudio.core.model.zoo.lenet import lenet5_input_size
from squeezestudio.core.model.zoo.registry import ZOO_ENTRIES, ZooEntry

Shape = tuple[int, ...]
_LISTED = 4  # names shown per category in an error message


@dataclass(frozen=True)
class StateDictDiff:
    """How a checkpoint's tensors differ from what an architecture expects."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, Shape, Shape]] = field(default_factory=list)
    common: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def similarity(self) -> float:
        """Share of all keys present in both with the same shape (1.0 is a perfect fit)."""
        total = self.common + len(self.missing) + len(self.unexpected)
        return (self.common - len(self.mismatched)) / total if total else 0.0

    def describe(self) -> str:
        """``missing 2 tensors (a, b); 1 unexpected (c); 1 of the wrong shape (d: expected .. got ..)``."""
        def listed(names: list[str]) -> str:
            more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
            return ", ".join(names[:_LISTED]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({listed(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({listed(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k}: expected {tuple(e)}, got {tuple(g)}" for k, e, g in self.mismatched]
            parts.append(f"{len(self.mismatched)} with the wrong shape ({listed(shown)})")
        return "; ".join(parts) if parts else "no differences"


def compare_shapes(expected: Mapping[str, Shape], actual: Mapping[str, Shape]) -> StateDictDiff:
    """Compare name->shape tables; a missing BatchNorm ``num_batches_tracked`` counter is fine.

    (Old torchvision checkpoints lack it and BatchNorm fills it in when loading.)
    """
    missing = [k for k in expected if k not in actual and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in actual if k not in expected]
    common = [k for k in expected if k in actual]
    mismatched = [(k, tuple(expected[k]), tuple(actual[k])) for k in common
                  if tuple(expected[k]) != tuple(actual[k])]
    return StateDictDiff(missing, unexpected, mismatched, common=len(common))


def shapes_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, Shape]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def module_shapes(module: nn.Module) -> dict[str, Shape]:
    """Name->shape of everything ``module.state_dict()`` holds."""
    return shapes_of(module.state_dict())


def zoo_shapes(name: str, kwargs: Mapping[str, int]) -> dict[str, Shape]:
    """Name->shape of a zoo architecture, built on the meta device (no memory needed)."""
    return dict(_cached_zoo_shapes(zoo_entry(name).name, int(kwargs["num_classes"]),
                                   int(kwargs["in_channels"]), int(kwargs["input_size"])))


@functools.lru_cache(maxsize=64)
def _cached_zoo_shapes(name: str, num_classes: int, in_channels: int,
                       input_size: int) -> tuple[tuple[str, Shape], ...]:
    # Cached: matching a checkpoint builds every architecture, which costs ~0.05 s each.
    with torch.device("meta"):
        module = zoo_entry(name).builder(num_classes, in_channels, input_size)
    return tuple(module_shapes(module).items())


def _square_side(features: int, channels: int) -> Optional[int]:
    if features % channels:
        return None
    side = math.isqrt(features // channels)
    return side if side * side * channels == features else None


def kwargs_from_shapes(entry: ZooEntry, shapes: Mapping[str, Shape]) -> Optional[dict[str, int]]:
    """``num_classes``/``in_channels``/``input_size`` read off the tensors, or None if absent.

    ``input_size`` can only be read for the LeNets (whose shapes depend on it);
    other architectures get their default.
    """
    first, last = shapes.get(entry.first_weight), shapes.get(entry.last_weight)
    if first is None or last is None or len(first) < 2 or len(last) < 1:
        return None
    num_classes, in_channels, input_size = last[0], first[1], entry.default_input_size
    if entry.name == "lenet300_100":
        for channels in (1, 3, 2, 4):
            side = _square_side(first[1], channels)
            if side is not None:
                in_channels, input_size = channels, side
                break
        else:
            return None
    elif entry.name == "lenet5":
        fc1 = shapes.get("fc1.weight")
        side = _square_side(fc1[1], 16) if fc1 is not None and len(fc1) == 2 else None
        if side is None:
            return None
        input_size = lenet5_input_size(side)
    try:
        return resolve_zoo_kwargs(entry.name, num_classes, in_channels, input_size)
    except ModelLoadError:
        return None


def fit_zoo_architecture(name: str, shapes: Mapping[str, Shape], overrides: Mapping[str, Any],
                         source: str) -> dict[str, int]:
    """Constructor arguments of zoo ``name`` that fit ``shapes``; ``overrides`` win.

    Raises :class:`ArchitectureMismatchError` listing the differences when it does not fit.
    """
    entry = zoo_entry(name)
    guessed = kwargs_from_shapes(entry, shapes) or {}
    unknown = set(overrides) - {"num_classes", "in_channels", "input_size"}
    if unknown:
        raise ModelLoadError(f"unknown architecture argument(s) {', '.join(sorted(unknown))}; "
                             f"use num_classes, in_channels or input_size")
    merged = {**guessed, **dict(overrides)}
    kwargs = resolve_zoo_kwargs(entry.name, merged.get("num_classes"), merged.get("in_channels"),
                                merged.get("input_size"))
    diff = compare_shapes(zoo_shapes(entry.name, kwargs), shapes)
    if not diff.ok:
        raise ArchitectureMismatchError(f"the weights in {source} do not fit {entry.name}: "
                                        f"{diff.describe()}")
    return kwargs


def infer_zoo_architecture(shapes: Mapping[str, Shape], source: str) -> tuple[str, dict[str, int]]:
    """The zoo architecture and arguments whose tensors equal ``shapes`` exactly.

    Raises :class:`ArchitectureMismatchError` naming the closest architecture
    and its differences when none fits.
    """
    best: Optional[tuple[float, str, StateDictDiff]] = None
    for entry in ZOO_ENTRIES.values():
        kwargs = kwargs_from_shapes(entry, shapes)
        trial = kwargs or resolve_zoo_kwargs(entry.name)
        diff = compare_shapes(zoo_shapes(entry.name, trial), shapes)
        if kwargs is not None and diff.ok:
            return entry.name, kwargs
        if best is None or diff.similarity() > best[0]:
            best = (diff.similarity(), entry.name, diff)
    hint = (f"pass --arch with one of {', '.join(ZOO_NAMES)}, or load your own model "
            f"definition as model.py:factory with --trust")
    if best is None or best[0] <= 0.0:
        raise ArchitectureMismatchError(f"the {len(shapes)} tensors in {source} match no known "
                                        f"architecture; {hint}")
    raise ArchitectureMismatchError(f"the tensors in {source} match no known architecture "
                                    f"(closest is {best[1]}: {best[2].describe()}); {hint}")
