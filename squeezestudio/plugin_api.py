"""Everything a compression-method plugin may use, from one module.

Plugins import from here instead of the core's internal modules, so the core
can be rearranged without breaking them: what is listed in ``__all__`` is the
contract (see docs/plugins.md). The built-in methods use the same classes.

- the interface: :class:`CompressionMethod` (any method),
  :class:`SubstitutionMethod` and :class:`Substitute` (methods that replace
  layers), :class:`FinetuneHooks`, the ``ORDER_*`` constants;
- typed configs: :func:`param`, :func:`make_config`;
- the state a method changes: :class:`CompressionState`, and how a weight is
  stored: :class:`WeightEncoding`, :class:`CustomPayload`, :func:`kept_positions`;
- helpers for substitutions: :func:`get_module`, :func:`replace_module`,
  :func:`calibration_images`, :func:`fit_to_original`;
- progress and cancel: :func:`check`, :func:`report`, :func:`scaled`,
  :data:`ProgressCallback`, :class:`CancelToken`;
- errors with one-sentence messages: :class:`SqueezeStudioError` and the
  subclasses a method raises.
"""

from __future__ import annotations

from squeezestudio.core.compression.config import make_config, param
from squeezestudio.core.compression.encoding import CustomPayload, WeightEncoding, kept_positions
from squeezestudio.core.compression.method import (
    ORDER_ACTIVATIONS,
    ORDER_ARCHITECTURE,
    ORDER_PRUNE,
    ORDER_SHARE,
    CompressionMethod,
    FinetuneHooks,
)
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.compression.substitution.calibration import calibration_images
from squeezestudio.core.compression.substitution.module_surgery import get_module, replace_module
from squeezestudio.core.compression.substitution.reconstruction import fit_to_original
from squeezestudio.core.compression.substitution.substitution_method import Substitute, SubstitutionMethod
from squeezestudio.core.errors import (
    ArchitectureMismatchError,
    CodecError,
    PluginError,
    RecipeError,
    SqueezeStudioError,
)
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled

__all__ = [
    "ORDER_ACTIVATIONS",
    "ORDER_ARCHITECTURE",
    "ORDER_PRUNE",
    "ORDER_SHARE",
    "ArchitectureMismatchError",
    "CancelToken",
    "CodecError",
    "CompressionMethod",
    "CompressionState",
    "CustomPayload",
    "FinetuneHooks",
    "PluginError",
    "ProgressCallback",
    "RecipeError",
    "SqueezeStudioError",
    "Substitute",
    "SubstitutionMethod",
    "WeightEncoding",
    "calibration_images",
    "check",
    "fit_to_original",
    "get_module",
    "kept_positions",
    "make_config",
    "param",
    "replace_module",
    "report",
    "scaled",
]
