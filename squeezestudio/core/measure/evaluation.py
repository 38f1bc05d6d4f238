"""Measure a classifier on a preprocessed data set: accuracy, loss, agreement, latency.

Evaluation runs after every compression step and for every point of a sweep,
so its loop is kept as close as possible to a bare forward loop over the
cached tensors: per batch it does one forward pass and a handful of cheap
reductions, with no host/device round trips or Python per-image work.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.devices import resolve_device
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.runtime_forward import estimated_export_s, runtime_forward_for
from squeezestudio.core.model.outputs import as_logits, class_scores, model_logits, output_kind_of
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report


@dataclass
class EvalResult:
    """What one evaluation measured.

    ``top1``/``top5`` and ``loss`` are None for unlabelled data; ``top5`` is
    None when the model has fewer than 5 outputs (it would be trivially 1.0).
    ``topk`` holds every requested k. ``agreement`` is the fraction of
    images on which the model's top-1 equals the reference's (None without a
    reference). Latencies time the model's forward passes only.
    """

    top1: Optional[float]
    top5: Optional[float]
    loss: Optional[float]
    agreement: Optional[float]
    n: int
    latency_ms_per_image: float
    latency_ms_per_batch: float
    batch_size: int
    topk: dict[int, Optional[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready dict of numbers (stored as experiment metrics).

        Accuracies for k other than 1 and 5 appear as ``"top<k>"`` keys.
        """
        d = {k: v for k, v in asdict(self).items() if k != "topk"}
        for k, v in self.topk.items():
            d.setdefault(f"top{k}", v)
        return d


def _input_kind(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's parameters (CPU float32 if it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


class _EvalMode:
    """Put every submodule in eval mode and restore each one's own training flag afterwards."""

    def __init__(self, *models: Optional[nn.Module]) -> None:
        self._models = [m for m in models if m is not None]
        self._flags: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        self._flags = [(m, m.training) for model in self._models for m in model.modules()]
        for model in self._models:
            model.eval()

    def __exit__(self, *exc: object) -> None:
        for m, flag in self._flags:
            m.training = flag


def _check_labels(labels: torch.Tensor, num_outputs: int) -> None:
    """Raise :class:`DataError` if a label cannot index the model's outputs."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_outputs):
        raise DataError(f"a label is outside the model's {num_outputs} outputs; "
                        "the data's classes do not match the model")


def reference_predictions(model: nn.Module, data: ImageDataset, *, batch_size: Optional[int] = None,
                          cancel: Optional[CancelToken] = None) -> torch.Tensor:
    """The top-1 class of every example under ``model`` (computed once, reused as ``reference``).

    The interactive loop measures agreement with the original model for every
    configuration; passing these cached predictions instead of the model
    halves the cost of each point.
    """
    preds = torch.empty(len(data), dtype=torch.int64)
    if not len(data):
        return preds
    device, dtype = _input_kind(model)
    batch_size = batch_size or _BatchPlan(None, int(data.images[0].numel())).candidates[-1]
    with _EvalMode(model), torch.inference_mode():
        for start in range(0, len(data), batch_size):
            check(cancel)
            x = data.images[start:start + batch_size].to(device=device, dtype=dtype)
            preds[start:start + x.shape[0]] = model_logits(model, x).argmax(dim=1).cpu()
    return preds


class _BatchPlan:
    """Batch sizes chosen by measuring: each candidate runs once on real data, then the fastest stays.

    Small images (up to 3x64x64) run at a fixed large batch; for larger ones
    the per-image time of a few sizes decides (a default of 256 at 224x224
    thrashes memory: system time exceeds user time).
    """

    def __init__(self, fixed: Optional[int], image_elements: int) -> None:
        self.fixed = fixed
        self.restart(image_elements)

    def restart(self, image_elements: int) -> None:
        if self.fixed is not None:
            self.candidates = [self.fixed]
        elif image_elements <= 3 * 64 * 64:
            self.candidates = [256]
        else:
            self.candidates = [8, 16, 32]
        self.timings: list[tuple[float, int]] = []

    def next_size(self) -> int:
        if len(self.timings) < len(self.candidates):
            return self.candidates[len(self.timings)]
        return min(self.timings)[1]

    def record(self, size: int, seconds: float, count: int) -> None:
        if len(self.timings) < len(self.candidates) and count == size:
            self.timings.append((seconds / max(count, 1), size))

    @property
    def chosen(self) -> int:
        return min(self.timings)[1] if self.timings else self.candidates[0]


PROBE_IMAGES = 2
"""Images of the first (torch) batch for large inputs, before onnxruntime takes over."""


def _with_runtime(model: nn.Module, x: torch.Tensor, out: torch.Tensor, remaining: int, per_image_s: float,
                  use_runtime: Optional[bool], device: torch.device) -> Optional[Callable[[torch.Tensor], Any]]:
    """An onnxruntime forward when it pays for its export (CPU only; see :mod:`.runtime_forward`)."""
    if use_runtime is False or device.type != "cpu" or remaining <= 0:
        return None
    projected = per_image_s * remaining
    # Worth it when the torch time left is well above the export's cost (onnxruntime is usually 2-4x faster).
    if use_runtime is None and (projected < 1.0 or projected < 2.0 * estimated_export_s(model)):
        return None
    return runtime_forward_for(model, x.clone(), class_scores(out))


def evaluate(model: nn.Module, data: ImageDataset, *, batch_size: Optional[int] = None,
             reference: Optional[Union[nn.Module, torch.Tensor]] = None, topk: Sequence[int] = (1, 5),
             progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
             device: Optional[str] = None, use_runtime: Optional[bool] = None) -> EvalResult:
    """Run ``model`` over ``data`` in batches and measure it (see :class:`EvalResult`).

    ``reference`` is a second model, or its top-1 predictions on ``data``
    (:func:`reference_predictions`), for the agreement metric. ``batch_size``
    None chooses the batch by measuring. ``device`` (``auto``/``cpu``/``cuda``,
    None: the process default) is where the forward passes run; the model is
    moved there and back. On the CPU, when the data set is large enough to
    repay an in-memory ONNX export, the forward passes run in onnxruntime
    (``use_runtime`` True forces it, False forbids it) after its first batch
    matched torch's. Runs without autograd with the model in eval mode (each
    submodule's training flag is restored afterwards). Checks ``cancel``
    between batches and reports progress after each one.
    """
    n = len(data)
    if n == 0:
        raise DataError("the data set is empty; nothing to evaluate")
    cached_reference: Optional[torch.Tensor] = None
    if isinstance(reference, torch.Tensor):
        if reference.shape != (n,):
            raise DataError(f"the reference predictions cover {tuple(reference.shape)} examples, "
                            f"not the {n} of this data set")
        cached_reference, reference = reference.to(torch.int64), None
    if batch_size is not None and batch_size < 1:
        raise DataError(f"the batch size must be at least 1, not {batch_size}")
    target = resolve_device(device)
    with _OnDevice(target, model, reference), _EvalMode(model, reference):
        return _evaluate(model, data, batch_size, reference, cached_reference, topk, progress, cancel,
                         target, use_runtime)


class _OnDevice:
    """Move modules to ``device`` for the evaluation and back to where each was afterwards."""

    def __init__(self, device: torch.device, *models: Optional[nn.Module]) -> None:
        self._device = device
        self._moves = [(m, _input_kind(m)[0]) for m in models if m is not None]

    def __enter__(self) -> None:
        for m, home in self._moves:
            if home != self._device:
                m.to(self._device)

    def __exit__(self, *exc: object) -> None:
        for m, home in self._moves:
            if home != self._device:
                m.to(home)


def _evaluate(model: nn.Module, data: ImageDataset, batch_size: Optional[int], reference: Optional[nn.Module],
              cached_reference: Optional[torch.Tensor], topk: Sequence[int], progress: Optional[ProgressCallback],
              cancel: Optional[CancelToken], target: torch.device, use_runtime: Optional[bool]) -> EvalResult:
    n = len(data)
    ks = sorted({int(k) for k in topk} | {1})
    labels_all = data.labels
    device, dtype = _input_kind(model)
    kind = output_kind_of(model)
    plan = _BatchPlan(batch_size, int(data.images[0].numel()))
    # Per batch only the forward pass, one topk, one copy and the loss run; the
    # accuracy and agreement counts are computed once over the stored indices.
    top_all: Optional[torch.Tensor] = None
    ref_all = torch.empty(n if reference is not None else 0, dtype=torch.int64)
    loss_sum = torch.zeros((), dtype=torch.float64)
    num_outputs = 0
    forward_s = 0.0
    n_batches = 0
    forward: Callable[[torch.Tensor], Any] = model
    ref_forward: Optional[Callable[[torch.Tensor], Any]] = reference
    checked_runtime = False
    start = 0
    # The first batch runs in torch (it decides whether onnxruntime repays an export, and checks its
    # outputs); at 224x224 torch is several times slower, so that probe is kept to a few images.
    probe = PROBE_IMAGES if plan.fixed is None and int(data.images[0].numel()) > 3 * 64 * 64 else None
    while start < n:
        check(cancel)
        probing = probe is not None and not checked_runtime
        size = probe if probing else plan.next_size()
        x = data.images[start:start + size]
        if x.device != device or x.dtype != dtype:
            x = x.to(device=device, dtype=dtype)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = forward(x)
        elapsed = time.perf_counter() - t0
        forward_s += elapsed
        if not probing:  # the probe is not a batch-size candidate: its images decide on onnxruntime only
            plan.record(size, elapsed, int(x.shape[0]))
        stop = start + x.shape[0]
        if not checked_runtime:
            checked_runtime = True
            fast = _with_runtime(model, x, out, n - stop, elapsed / max(int(x.shape[0]), 1), use_runtime, target)
            if fast is not None:
                forward = fast
                plan.restart(int(x[0].numel()))
                if reference is not None:
                    with torch.inference_mode():
                        ref_out = reference(x)
                    ref_forward = runtime_forward_for(reference, x.clone(), class_scores(ref_out)) or reference
        with torch.inference_mode():
            logits = as_logits(class_scores(out), kind)
            if top_all is None:
                num_outputs = int(logits.shape[1])
                top_all = torch.empty((n, min(ks[-1], num_outputs)), dtype=torch.int64)
                if labels_all is not None:
                    _check_labels(labels_all, num_outputs)
            top_all[start:stop] = logits.topk(top_all.shape[1], dim=1).indices.cpu()
            if labels_all is not None:
                y = labels_all[start:stop].to(device=logits.device, dtype=torch.int64)
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").cpu()
            if ref_forward is not None:
                ref_logits = as_logits(class_scores(ref_forward(x)), output_kind_of(reference))
                ref_all[start:stop] = ref_logits.argmax(dim=1).cpu()
        n_batches += 1
        start = stop
        report(progress, stop / n, f"evaluated {stop}/{n} images")
    assert top_all is not None
    acc: dict[int, Optional[float]] = {k: None for k in ks}
    if labels_all is not None:
        hits = (top_all == labels_all.unsqueeze(1)).cumsum(dim=1).clamp_(max=1).sum(dim=0)
        acc = {k: None if k > num_outputs else int(hits[k - 1]) / n for k in ks}
    return EvalResult(
        top1=acc[1], top5=acc.get(5),
        loss=None if labels_all is None else float(loss_sum) / n,
        agreement=(int((top_all[:, 0] == cached_reference).sum()) / n if cached_reference is not None
                   else None if reference is None else int((top_all[:, 0] == ref_all).sum()) / n),
        n=n, latency_ms_per_image=1000.0 * forward_s / n,
        latency_ms_per_batch=1000.0 * forward_s / n_batches, batch_size=plan.chosen,
        topk={k: acc[k] for k in ks if k in {int(t) for t in topk}})


def predict_topk(model: nn.Module, images: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and class indices of the ``k`` best classes, best first.

    ``images`` is ``(N, C, H, W)`` (or one ``(C, H, W)`` image); returns two
    ``(N, min(k, classes))`` tensors. The model's training flags are restored.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    if k < 1:
        raise DataError(f"k must be at least 1, not {k}")
    device, dtype = _input_kind(model)
    with _EvalMode(model), torch.inference_mode():
        logits = model_logits(model, images.to(device=device, dtype=dtype))
        probs = torch.softmax(logits.float(), dim=1)
        top = probs.topk(min(k, probs.shape[1]), dim=1)
    return top.values, top.indices
