"""Measure whole candidate recipes for real: a plain function over a list, so it can be farmed out.

Each candidate is compressed, evaluated and encoded by
:func:`~squeezestudio.core.measure.measure_recipe.measure_recipe` -- its
size is the exact ``.sqz`` length, its accuracy measured on the data given
(for the search: the held-out part of the training data). Nothing here
depends on the order of the list or on shared state, so a distributed runner
(Ray) can measure slices of it in parallel and concatenate the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.measure_recipe import measure_recipe
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


@dataclass(frozen=True)
class CandidateResult:
    """One measured recipe: exact bytes and the measured numbers, with the recipe as plain data."""

    label: str
    recipe: dict[str, Any]
    size_bytes: int
    top1: Optional[float]
    loss: Optional[float]
    agreement: Optional[float]

    def rank_key(self) -> tuple[float, float]:
        """Higher top-1 first, then lower loss."""
        return (-(self.top1 or 0.0), self.loss if self.loss is not None else float("inf"))


def measure_candidates(handle: ModelHandle, candidates: Sequence[tuple[str, Any]], data: ImageDataset, *,
                       registry: MethodRegistry,
                       train_data: Optional[ImageDataset] = None, reference: Any = None,
                       batch_size: Optional[int] = None,
                       progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelToken] = None) -> list[CandidateResult]:
    """``[(label, recipe), ...]`` -> one :class:`CandidateResult` each, in the same order."""
    from squeezestudio.core.compression.recipe import recipe_to_dict

    out: list[CandidateResult] = []
    n = max(1, len(candidates))
    for i, (label, recipe) in enumerate(candidates):
        check(cancel)
        report(progress, i / n, f"measuring {label}")
        m = measure_recipe(handle, recipe, data, registry=registry, train_data=train_data, reference=reference,
                           batch_size=batch_size, progress=scaled(progress, i / n, (i + 1) / n), cancel=cancel)
        ev = m.evaluation
        out.append(CandidateResult(label=label, recipe=recipe_to_dict(recipe), size_bytes=m.size_bytes,
                                   top1=None if ev is None else ev.top1, loss=None if ev is None else ev.loss,
                                   agreement=None if ev is None else ev.agreement))
    report(progress, 1.0, "candidates measured")
    return out
