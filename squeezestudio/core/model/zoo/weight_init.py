"""Weight initialisation shared by the zoo architectures.

Freshly built zoo models are mostly used as targets for a user's checkpoint,
but they are also trained from scratch in tests and demos (digits), so they
start from the usual He-initialised convolutions and small linear layers
rather than PyTorch's per-layer defaults.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn


def is_meta(module: nn.Module) -> bool:
    """True when built under ``torch.device("meta")`` (shapes only: nothing to initialise).

    Skipping initialisation there matters: random fills on meta tensors pull in
    slow decompositions (seconds on first use) for values that do not exist.
    """
    return any(p.is_meta for p in module.parameters())


def init_classifier_weights(module: nn.Module, keep_default: Iterable[nn.Module] = ()) -> None:
    """He-normal convolutions, unit batch norms, N(0, 0.01) linears, zero biases.

    Modules in ``keep_default`` get PyTorch's own initialisation instead
    (``reset_parameters``), e.g. final layers of nets that train better so.
    """
    if is_meta(module):
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    for m in keep_default:
        m.reset_parameters()  # type: ignore[operator]
