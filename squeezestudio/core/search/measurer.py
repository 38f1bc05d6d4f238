"""Where the search's measurements run: here, one after another, or farmed out to a cluster.

The search measures two kinds of things: the cells of its per-layer table
(:func:`~squeezestudio.core.search.layer_table.measure_layer_table`) and
whole candidate recipes (:func:`~squeezestudio.core.search.candidates.measure_candidates`).
:class:`SearchMeasurer` runs both here; ``core.cluster`` subclasses it to run
each cell and each candidate as a Ray task through the same core functions, so
the search itself -- its choices, its repairs -- is one piece of code whichever
machine measures.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.evaluation import reference_predictions
from squeezestudio.core.measure.sensitivity import SensitivityResult
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback
from squeezestudio.core.search.candidates import CandidateResult, measure_candidates
from squeezestudio.core.search.layer_table import LayerTable, measure_layer_table
from squeezestudio.core.search.settings import LayerSetting


class SearchMeasurer:
    """Measures the table and the candidates in this process (the original model's predictions computed once)."""

    def __init__(self) -> None:
        self._reference: Optional[tuple[ImageDataset, torch.Tensor]] = None

    def reference(self, handle: ModelHandle, data: ImageDataset, *, batch_size: int,
                  cancel: Optional[CancelToken] = None) -> torch.Tensor:
        """The original's top-1 on ``data`` (for the agreement), computed on the first call for that data."""
        if self._reference is None or self._reference[0] is not data:
            self._reference = (data, reference_predictions(handle.module, data, batch_size=batch_size, cancel=cancel))
        return self._reference[1]

    def table(self, handle: ModelHandle, selection: ImageDataset, layers: Sequence[str],
              settings: Sequence[LayerSetting], *, registry: MethodRegistry,
              sensitivity: Optional[SensitivityResult] = None, batch_size: Optional[int] = None,
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> LayerTable:
        return measure_layer_table(handle, selection, layers, settings, registry=registry, sensitivity=sensitivity,
                                   batch_size=batch_size, progress=progress, cancel=cancel)

    def candidates(self, handle: ModelHandle, candidates: Sequence[tuple[str, Any]], data: ImageDataset, *,
                   registry: MethodRegistry, batch_size: Optional[int] = None,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> list[CandidateResult]:
        """One result per ``(label, recipe)``, in the same order."""
        reference = self.reference(handle, data, batch_size=batch_size, cancel=cancel)
        return measure_candidates(handle, candidates, data, registry=registry, reference=reference,
                                  batch_size=batch_size, progress=progress, cancel=cancel)
