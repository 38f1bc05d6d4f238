"""The one interface every compression method implements, built-in or plugin.

A method has a name, a one-sentence description (the GUI's tooltip), a typed
config class (see :mod:`.config`), the layer types it applies to, and an
``apply`` that changes a :class:`CompressionState` in place for a set of
layers, each with its own resolved config. Methods run in ``order``:
architecture changes first, then pruning, then weight sharing/quantization,
then activation quantization; entropy coding happens in the codec. A method
that measures something on images says so (``needs_calibration``: the caller
then passes calibration images), and one that leaves the weights alone says
that too (``changes_weights``: fine-tuning has nothing of it to keep). Optional hooks let fine-tuning keep the
compression (``finetune_hooks``) and let a method store weights its own way
(``decode_custom`` for ``WeightEncoding.kind == "custom"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from torch import nn

from squeezestudio.core.progress import CancelToken, ProgressCallback
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.errors import RecipeError

if TYPE_CHECKING:
    import numpy as np

    from squeezestudio.core.compression.encoding import CustomPayload
    from squeezestudio.core.compression.state import CompressionState

ORDER_ARCHITECTURE = 0
ORDER_PRUNE = 10
ORDER_SHARE = 20  # clustering / quantization
ORDER_ACTIVATIONS = 30  # activation quantization: ranges measured on the final weights


@dataclass
class FinetuneHooks:
    """What fine-tuning must do to keep a method's compression.

    ``before_step`` runs after ``loss.backward()`` and before the optimizer
    step (e.g. sum gradients per cluster); ``after_step`` runs after the step
    (e.g. re-apply masks, re-project onto the codebook). ``forward_weight`` is
    for straight-through training: given a layer name and its float weight it
    returns the weight to use in the forward pass.
    """

    before_step: Optional[Callable[[], None]] = None
    after_step: Optional[Callable[[], None]] = None
    finish: Optional[Callable[[], None]] = None


class CompressionMethod(ABC):
    """Base class of all compression methods (the plugin contract)."""

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    order: ClassVar[int]
    config_class: ClassVar[type]
    layer_types: ClassVar[tuple[type[nn.Module], ...]] = (nn.Conv2d, nn.Linear)
    exclusive_with: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False  # reads ``state.calibration`` (images) when it applies
    changes_weights: ClassVar[bool] = True  # False: fine-tuning keeps nothing of it in the weights

    def config_for(self, layer: str, config: Any) -> Any:
        """``config`` as this method's config object: recipes pass one, scripts may pass a dict."""
        if isinstance(config, self.config_class):
            return config
        if config is not None and not isinstance(config, dict):
            raise RecipeError(f"{self.name} on {layer}: the configuration must be a "
                              f"{self.config_class.__name__} or a mapping of options")
        return make_config(self.config_class, dict(config or {}), where=f"{self.name} on {layer}")

    def applies_to(self, module: nn.Module) -> bool:
        """True if this method can compress ``module``."""
        return isinstance(module, self.layer_types)

    @abstractmethod
    def apply(self, state: "CompressionState", layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        """Compress the named layers of ``state`` in place, each with its config."""

    def finetune_hooks(self, state: "CompressionState",
                       layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Hooks that keep this compression during fine-tuning (None: nothing to keep)."""
        return None

    def decode_custom(self, payload: "CustomPayload", shape: tuple[int, ...]) -> "np.ndarray":
        """Rebuild a dense weight from this method's custom payload."""
        raise NotImplementedError(f"method {self.name} stores no custom payloads")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        """Replay an architecture modification this method recorded (for loading .sqz)."""
        raise NotImplementedError(f"method {self.name} records no architecture modifications")
