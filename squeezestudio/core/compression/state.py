"""The working state a recipe is applied to: a model copy plus its weight encodings."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch
from torch import nn

from squeezestudio.core.compression.encoding import WeightEncoding, kept_positions
from squeezestudio.core.model.handle import ArchitectureSpec, ModelHandle


def weight_key(layer: str) -> str:
    """The parameter name of a layer's weight (``features.0`` -> ``features.0.weight``)."""
    return f"{layer}.weight" if layer else "weight"


@dataclass
class CompressionState:
    """A model being compressed.

    ``handle`` owns a private copy of the module (never the user's original).
    ``encodings`` maps a weight's parameter name to how it is stored; weights
    without an entry are stored dense float32. Every method that changes a
    weight must go through :meth:`set_encoding`, which also writes the decoded
    weight into the module, keeping file and model identical. ``calibration``
    optionally holds preprocessed input images (N, C, H, W) that substitution
    methods use for layer-wise reconstruction.
    """

    handle: ModelHandle
    encodings: dict[str, WeightEncoding] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    calibration: Optional[torch.Tensor] = None
    _original: Optional[nn.Module] = field(default=None, repr=False)
    _substituted: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def from_handle(cls, handle: ModelHandle,
                    calibration: Optional[torch.Tensor] = None) -> "CompressionState":
        """Start from a deep copy of ``handle``'s module."""
        return cls(handle=handle.clone(), calibration=calibration)

    @property
    def module(self) -> nn.Module:
        return self.handle.module

    @property
    def architecture(self) -> Optional[ArchitectureSpec]:
        return self.handle.architecture

    def record_modification(self, modification: dict) -> None:
        """Note an architecture change so a .sqz can replay it on load."""
        if self.handle.architecture is not None:
            self.handle.architecture = self.handle.architecture.with_modification(modification)

    def original_module(self) -> nn.Module:
        """The model before this state's layer substitutions: what a substitute is fitted to.

        Substitution methods run once per recipe entry; fitting each new layer
        to a copy of the *already changed* model compounds the errors (seven
        Fire modules ended at chance). So the first call keeps a copy, and
        later calls reuse it while every parameter and buffer outside the
        substituted layers is still identical; any other change to the model
        makes it stale and a fresh copy is taken.
        """
        if self._original is not None and _unchanged_outside(self._original, self.module, self._substituted):
            return self._original
        self._original, self._substituted = copy.deepcopy(self.module), []
        return self._original

    def record_substitution(self, layer: str, modification: dict) -> None:
        """Bookkeeping after ``layer`` was replaced: drop its encodings, note the change for .sqz replay."""
        for key in (f"{layer}.weight", f"{layer}.bias"):
            self.encodings.pop(key, None)
        self.record_modification(modification)
        self._substituted.append(layer)

    def layers(self, types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)) -> dict[str, nn.Module]:
        """Named layers of the given types that own a ``weight`` parameter."""
        return {name: m for name, m in self.module.named_modules()
                if isinstance(m, types) and isinstance(getattr(m, "weight", None), nn.Parameter)}

    def layer(self, name: str) -> nn.Module:
        return self.module.get_submodule(name)

    def encoding(self, layer: str) -> WeightEncoding:
        """The current encoding of a layer's weight (dense float32 if untouched)."""
        key = weight_key(layer)
        enc = self.encodings.get(key)
        if enc is None:
            w = self.layer(layer).weight.detach().cpu().numpy()
            enc = WeightEncoding.dense(w)
        return enc

    def set_encoding(self, layer: str, encoding: WeightEncoding, custom_decoder=None) -> None:
        """Store ``encoding`` for the layer and set its weight to the decoded tensor.

        A masked, non-custom encoding is written without building the dense
        decoding: the weight is zeroed in place and the kept values scattered
        into it, which gives the same tensor as ``decode()`` (zeros elsewhere)
        without a fresh full-size array per call.
        """
        module = self.layer(layer)
        weight = module.weight
        if encoding.mask is not None and encoding.kind != "custom" and weight.is_contiguous() \
                and weight.dtype == torch.float32 and weight.device.type == "cpu":
            if tuple(encoding.shape) != tuple(weight.shape):
                raise ValueError(f"{layer}: encoding shape {tuple(encoding.shape)} != weight {tuple(weight.shape)}")
            kept = encoding.kept_values()
            positions = kept_positions(encoding.mask)
            if positions.size != kept.size or np.asarray(encoding.mask).size != weight.numel():
                raise ValueError(f"{layer}: the encoding's mask and kept values do not match its shape")
            flat = weight.detach().view(-1).numpy()  # shares the parameter's memory
            flat.fill(0.0)
            flat[positions] = kept
        else:
            decoded = encoding.decode(custom_decoder)
            if tuple(decoded.shape) != tuple(weight.shape):
                raise ValueError(f"{layer}: encoding shape {decoded.shape} != weight {tuple(weight.shape)}")
            with torch.no_grad():
                weight.copy_(torch.from_numpy(np.ascontiguousarray(decoded)).to(weight.dtype))
        self.encodings[weight_key(layer)] = encoding

    def mask(self, layer: str) -> Optional[np.ndarray]:
        """The kept-positions mask of a layer (None if not pruned)."""
        enc = self.encodings.get(weight_key(layer))
        return None if enc is None else enc.mask

    def iter_encodings(self) -> Iterator[tuple[str, WeightEncoding]]:
        yield from self.encodings.items()


def _unchanged_outside(original: nn.Module, current: nn.Module, replaced: list[str]) -> bool:
    prefixes = tuple(f"{name}." for name in replaced)
    now = {k: v for k, v in current.state_dict().items() if not k.startswith(prefixes)}
    before = {k: v for k, v in original.state_dict().items() if not k.startswith(prefixes)}
    return now.keys() == before.keys() and all(
        now[k].shape == before[k].shape and torch.equal(now[k], before[k]) for k in now)
