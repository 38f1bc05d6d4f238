"""Re-estimate BatchNorm running statistics after layers before them were replaced.

A BatchNorm in eval mode normalises with the mean and variance of what the
*original* layer produced during training. After a substitution the new
layer's outputs have a slightly different per-channel scale and offset (a
low-rank start loses energy, a least-squares fit shrinks towards the mean),
and the stale statistics turn that small, harmless difference into a shift
that compounds through every later layer. Re-estimating the statistics on a
few hundred calibration images (AdaBN, Li et al. 2016) removes that part of
the error for free: no weights change, only the ``running_mean`` /
``running_var`` buffers (which the .sqz file stores).

Only BatchNorm layers *after* the first replaced layer (in module order) are
touched: earlier ones see unchanged inputs, and re-estimating them on a small
calibration set would only add noise.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorms_after(model: nn.Module, layers: Iterable[str]) -> list[str]:
    """Names of the BatchNorm modules that come after the first of ``layers`` in module order.

    Module order is definition order; it matches execution order in the
    sequential and VGG/ResNet-style networks this is meant for. A name in
    ``layers`` that is not in the model is ignored.
    """
    wanted = set(layers)
    names = [name for name, _ in model.named_modules()]
    first = next((i for i, name in enumerate(names) if name in wanted), None)
    if first is None:
        return []
    return [name for name, m in list(model.named_modules())[first + 1:] if isinstance(m, _BATCHNORM)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, names: Iterable[str], *,
                          batch_size: int = 64, progress: Optional[ProgressCallback] = None,
                          cancel: Optional[CancelToken] = None) -> int:
    """Replace the running statistics of the BatchNorm layers ``names`` by their values on ``images``.

    The statistics are an exact average over the batches (``momentum=None``),
    not an exponential one, so the result does not depend on batch order.
    Every other module stays in eval mode (dropout off, other BatchNorms
    frozen). Returns how many layers were recalibrated; the model is left in
    the mode it was in.
    """
    targets = [model.get_submodule(name) for name in names]
    targets = [m for m in targets if isinstance(m, _BATCHNORM) and m.track_running_stats]
    if not targets or images.shape[0] == 0:
        return 0
    was_training = model.training
    saved = [(m, m.momentum) for m in targets]
    backup = [{k: v.clone() for k, v in m.state_dict().items()} for m in targets]
    model.eval()
    for m in targets:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over all batches
        m.train()
    try:
        total = images.shape[0]
        for start in range(0, total, batch_size):
            check(cancel)
            batch = images[start:start + batch_size]
            if batch.shape[0] < 2 and start > 0:
                break  # a single-image batch has no variance to learn from
            model(batch)
            report(progress, min(start + batch_size, total) / total, "re-estimating BatchNorm statistics")
    except BaseException:
        for m, state in zip(targets, backup):  # cancelled or failed: keep the old statistics
            m.load_state_dict(state)
        raise
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    return len(targets)
