"""Fixed, seeded, stratified subsets: the same images every time, every class in proportion.

``--limit N`` and the GUI's interactive points measure on such a subset, so
two runs (or two points on the plot) compare like with like, and a rare
class is not dropped by chance.
"""

from __future__ import annotations

import numpy as np
import torch

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError


def stratified_indices(labels: "torch.Tensor | None", total: int, limit: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``limit`` of ``total`` examples, classes in proportion (largest remainders).

    Unlabelled data gets a seeded uniform sample. ``limit >= total`` keeps everything.
    """
    if limit < 1:
        raise DataError(f"the limit must be at least 1 image, not {limit}")
    if limit >= total:
        return torch.arange(total)
    rng = np.random.default_rng(seed)
    if labels is None:
        return torch.from_numpy(np.sort(rng.permutation(total)[:limit]))
    y = labels.numpy()
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (limit / total)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: limit - int(take.sum())]:
        take[i] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return torch.from_numpy(np.sort(np.concatenate(chosen)))


def limited(dataset: ImageDataset, limit: int, seed: int = 0) -> ImageDataset:
    """``dataset`` cut to a fixed stratified subset of ``limit`` images (itself if it is no larger)."""
    if limit >= len(dataset):
        return dataset
    idx = stratified_indices(dataset.labels, len(dataset), limit, seed)
    return dataset.subset(idx, name=f"{dataset.name} ({limit} of {len(dataset)})")
