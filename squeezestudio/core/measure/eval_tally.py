"""The per-image results of an evaluation (top-k classes, loss), reduced a chunk at a time.

Why chunks and not every batch: when the forward passes run in onnxruntime,
a torch reduction between two of them (a cross-entropy of 8x1000 scores)
wakes torch's own thread pool, whose threads then keep spinning while
onnxruntime's run on the same cores. Measured on 2 cores, a cross-entropy
after every batch of 8 cost a MobileNetV2-shaped 224x224 model 10-15% of its
onnxruntime throughput; one reduction per chunk of batches costs nothing
measurable. The forward's outputs are only kept until the chunk is reduced.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from squeezestudio.core.errors import DataError
from squeezestudio.core.model.outputs import as_logits

CHUNK_ELEMENTS = 1 << 20
"""Scores held before they are reduced (4 MiB of float32: ~1,000 images of 1,000 classes)."""


def _check_labels(labels: torch.Tensor, num_outputs: int) -> None:
    """Raise :class:`DataError` if a label cannot index the model's outputs."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_outputs):
        raise DataError(f"a label is outside the model's {num_outputs} outputs; "
                        "the data's classes do not match the model")


def ranked_classes(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` best classes of each row, best first; tied scores in class order (the lowest index first).

    ``topk`` leaves the order of ties unspecified, and ties are common where
    a model's outputs are quantized (an int8 ONNX file's probabilities come
    in steps of 1/255): measured on 359 images, ``topk`` scored such a file
    98.05% where onnxruntime's outputs with numpy's ``argmax`` (the first
    maximum) scored 97.49%. A stable descending sort gives numpy's answer.
    """
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


class EvalTally:
    """Collects each batch's class scores and reduces them in chunks of :data:`CHUNK_ELEMENTS`.

    ``kind`` is the model's output kind (see
    :mod:`squeezestudio.core.model.outputs`); ``labels`` (or None) the
    images' classes, for the loss.
    """

    def __init__(self, n: int, k_max: int, labels: Optional[torch.Tensor], kind: str,
                 chunk_elements: int = CHUNK_ELEMENTS) -> None:
        self.n = n
        self._k_max = k_max
        self._labels = labels
        self._kind = kind
        self._chunk_elements = chunk_elements
        self.num_outputs = 0
        self.top: Optional[torch.Tensor] = None  # (n, min(k_max, classes)) class indices, best first
        self.loss_sum = 0.0  # summed cross-entropy of the images reduced so far (with labels)
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._pending_elements = 0

    def add(self, start: int, scores: torch.Tensor) -> None:
        """The ``(batch, classes)`` scores of images ``start:start + batch`` (batches in order)."""
        if self.top is None:
            self.num_outputs = int(scores.shape[1])
            self.top = torch.empty((self.n, min(self._k_max, self.num_outputs)), dtype=torch.int64)
            if self._labels is not None:
                _check_labels(self._labels, self.num_outputs)
        self._pending.append((start, scores.detach()))
        self._pending_elements += scores.numel()
        if self._pending_elements >= self._chunk_elements:
            self.flush()

    def flush(self) -> None:
        """Reduce the scores held so far (called by :meth:`add`, and once at the end)."""
        if not self._pending:
            return
        start, stop = self._pending[0][0], self._pending[-1][0] + self._pending[-1][1].shape[0]
        scores = torch.cat([s for _, s in self._pending]) if len(self._pending) > 1 else self._pending[0][1]
        self._pending, self._pending_elements = [], 0
        assert self.top is not None
        logits = as_logits(scores, self._kind)
        self.top[start:stop] = ranked_classes(logits, self.top.shape[1]).cpu()
        if self._labels is not None:
            y = self._labels[start:stop].to(device=logits.device, dtype=torch.int64)
            self.loss_sum += float(F.cross_entropy(logits.float(), y, reduction="none").double().sum())
