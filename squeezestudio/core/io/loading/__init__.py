"""Model loading: every supported format becomes one :class:`ModelHandle`.

``load_model`` sniffs the format (torch state_dict, safetensors, TorchScript,
pickled module, ONNX, .sqz, ``model.py:factory``) and refuses formats that run
code unless the caller trusts the file. ``save_state_dict`` and
``save_safetensors`` write weights plus SqueezeStudio metadata, so the files
reopen without naming the architecture.
"""

from __future__ import annotations

from squeezestudio.core.io.loading.dispatch import load_model
from squeezestudio.core.io.loading.saving import save_safetensors, save_state_dict

__all__ = ["load_model", "save_state_dict", "save_safetensors"]
