"""Save a handle's weights as a torch state_dict or a safetensors file, with our metadata.

Both files reopen with :func:`load_model` without ``--arch``: the metadata
records the architecture, class names and input spec. Both are weights-only
formats, so they can be shared without asking anyone to trust code. Writes
go through :mod:`squeezestudio.core.atomic_write`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch

from squeezestudio.core.atomic_write import atomic_write_with
from squeezestudio.core.io.loading.metadata import METADATA_KEY, metadata_from_handle, metadata_to_json
from squeezestudio.core.model.handle import ModelHandle

PathLike = Union[str, "os.PathLike[str]"]


def _plain_tensors(handle: ModelHandle) -> dict[str, torch.Tensor]:
    """CPU, contiguous copies of the state_dict with no two sharing memory (safetensors forbids it)."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, value in handle.module.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def save_state_dict(handle: ModelHandle, path: PathLike) -> int:
    """Write ``{"state_dict": ..., "squeezestudio": metadata}`` with ``torch.save``; returns bytes."""
    payload = {"state_dict": _plain_tensors(handle), METADATA_KEY: metadata_from_handle(handle)}
    return atomic_write_with(path, lambda tmp: torch.save(payload, tmp))


def save_safetensors(handle: ModelHandle, path: PathLike) -> int:
    """Write a safetensors file whose string metadata holds our metadata as JSON; returns bytes."""
    from safetensors.torch import save_file

    tensors = _plain_tensors(handle)
    metadata = {"format": "pt", METADATA_KEY: metadata_to_json(metadata_from_handle(handle))}
    return atomic_write_with(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
