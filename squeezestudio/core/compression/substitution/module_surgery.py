"""Replace a sub-module by its dotted name (``features.3``, ``block.conv``, ``heads.main``).

Works for children of ``nn.Sequential``/``nn.ModuleList`` (numeric names),
named attributes and ``nn.ModuleDict`` entries, since all of them live in the
parent's ``_modules`` under the last part of the name.
"""

from __future__ import annotations

from torch import nn

from squeezestudio.core.errors import RecipeError


def get_module(root: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``; :class:`RecipeError` if there is none."""
    try:
        return root.get_submodule(name)
    except AttributeError:
        raise RecipeError(f"the model has no layer named {name!r}; check the layer table "
                          "for the exact name") from None


def replace_module(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where ``name`` is and return the module it replaced."""
    if not name:
        raise RecipeError("the whole model cannot be replaced; name one of its layers")
    parent_name, _, child = name.rpartition(".")
    parent = get_module(root, parent_name) if parent_name else root
    if child not in parent._modules or parent._modules[child] is None:
        raise RecipeError(f"the model has no layer named {name!r}; check the layer table "
                          "for the exact name")
    old = parent._modules[child]
    parent._modules[child] = new
    return old
