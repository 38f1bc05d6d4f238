"""Measure a classifier on a preprocessed data set: accuracy, loss, agreement, latency.

Evaluation runs after every compression step and for every point of a sweep,
so its loop is kept as close as possible to a bare forward loop over the
cached tensors: per batch it does one forward pass and keeps the scores;
top-k and loss are reduced a chunk of batches at a time
(:mod:`.eval_tally`), with no host/device round trips or Python per-image
work.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.devices import resolve_device
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.eval_tally import EvalTally, ranked_classes
from squeezestudio.core.measure.runtime_choice import counting_macs, runtime_pays
from squeezestudio.core.measure.runtime_forward import runtime_batch_size, runtime_forward_for
from squeezestudio.core.model.outputs import class_scores, model_logits, output_kind_of
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


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


def reference_predictions(model: nn.Module, data: ImageDataset, *, batch_size: Optional[int] = None,
                          cancel: Optional[CancelToken] = None, device: Optional[str] = None,
                          use_runtime: Optional[bool] = None) -> torch.Tensor:
    """The top-1 class of every example under ``model`` (computed once, reused as ``reference``).

    The interactive loop measures agreement with the original model for every
    configuration; passing these cached predictions instead of the model
    halves the cost of each point. They come from the same loop as
    :func:`evaluate` (same batches, device and onnxruntime choice), so a model
    measured against itself agrees on every image.
    """
    if not len(data):
        return torch.empty(0, dtype=torch.int64)
    target = resolve_device(device)
    with _OnDevice(target, model), _EvalMode(model):
        return _forward_all(model, data.images, None, 1, batch_size, None, cancel, target, use_runtime).top1


class _BatchPlan:
    """Batch sizes chosen by measuring where that cannot change a result, fixed where it could.

    Small images (up to 3x64x64) run at a fixed large batch. For larger ones
    (a default of 256 at 224x224 thrashes memory: system time exceeds user
    time) eager torch on the CPU runs at one size from the image size
    (:func:`runtime_batch_size`): its outputs depend on the batch size in
    float rounding (0.49 on logits of 50, batches of 8 against 16, on a
    MobileNetV2-shaped model), so a timed choice would make the numbers
    depend on the machine. onnxruntime's CPU outputs were bit-identical at
    batches of 1 to 32, so there, and on a GPU, a few sizes are tried in
    increasing order. Each size is timed on its second full batch: the first
    one at a new size pays the runtime's memory planning and first-touch
    pages (1.03-1.7x a warm batch measured in onnxruntime), which would
    favour whichever size came first. The next size is tried only while the
    last one was faster than the one before, so a model that prefers small
    batches pays for one larger size only.
    """

    def __init__(self, fixed: Optional[int], image_elements: int, timed: bool = True) -> None:
        self.fixed = fixed
        if fixed is not None:
            self._start([fixed])
        elif image_elements <= 3 * 64 * 64:
            self._start([256])
        elif not timed:
            self._start([runtime_batch_size(image_elements)])
        else:
            self._start([8, 16, 32])

    def _start(self, candidates: list[int]) -> None:
        self.candidates = candidates
        self.timings: list[tuple[float, int]] = []  # (seconds per image, size) of each size tried, warm
        self._index = 0
        self._full_batches = 0  # run at the current candidate
        self._done = len(candidates) == 1

    def run_in_runtime(self, image_elements: int) -> None:
        """onnxruntime took over: unless the caller fixed the batch, its own sizes are tried from the start."""
        if self.fixed is None:
            base = runtime_batch_size(image_elements)
            self._start(sorted({min(256, base * f) for f in (1, 2, 4)}))

    def next_size(self) -> int:
        return self.chosen if self._done else self.candidates[self._index]

    def record(self, size: int, seconds: float, count: int) -> None:
        if self._done or count != size or size != self.candidates[self._index]:
            return
        self._full_batches += 1
        if self._full_batches == 1:
            return  # the first batch at a new size is not a fair timing (see the class docstring)
        self.timings.append((seconds / count, size))
        faster = len(self.timings) == 1 or self.timings[-1][0] < self.timings[-2][0]
        if faster and self._index + 1 < len(self.candidates):
            self._index, self._full_batches = self._index + 1, 0
        else:
            self._done = True

    @property
    def chosen(self) -> int:
        return min(self.timings)[1] if self.timings else self.candidates[0]


PROBE_IMAGES = 2
"""Images of the first (torch) batch for large inputs, before onnxruntime takes over."""


def _with_runtime(model: nn.Module, x: torch.Tensor, out: torch.Tensor, remaining: int, macs_per_image: int,
                  use_runtime: Optional[bool], device: torch.device) -> Optional[Callable[[torch.Tensor], Any]]:
    """An onnxruntime forward when it pays for its export (CPU only; see :mod:`.runtime_forward`).

    Whether it pays is counted, not timed (:mod:`.runtime_choice`): the two
    runtimes round differently, so the same model and data must choose the
    same way on every machine.
    """
    if use_runtime is False or device.type != "cpu" or remaining <= 0:
        return None
    if use_runtime is None and not runtime_pays(model, macs_per_image, remaining):
        return None
    return runtime_forward_for(model, x.clone(), class_scores(out))


def evaluate(model: nn.Module, data: ImageDataset, *, batch_size: Optional[int] = None,
             reference: Optional[Union[nn.Module, torch.Tensor]] = None, topk: Sequence[int] = (1, 5),
             progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
             device: Optional[str] = None, use_runtime: Optional[bool] = None) -> EvalResult:
    """Run ``model`` over ``data`` in batches and measure it (see :class:`EvalResult`).

    ``reference`` is a second model, or its top-1 predictions on ``data``
    (:func:`reference_predictions`), for the agreement metric (a model runs
    over the data after ``model``, in a pass of its own). ``batch_size``
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
        return _evaluate(model, data, batch_size, reference, cached_reference, topk, progress, cancel, target,
                         use_runtime)


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


@dataclass
class _Pass:
    """What one pass of a model over the images produced (see :func:`_forward_all`)."""

    tally: EvalTally
    forward_s: float
    batches: int
    batch_size: int

    @property
    def top1(self) -> torch.Tensor:
        assert self.tally.top is not None
        return self.tally.top[:, 0].clone()


def _evaluate(model: nn.Module, data: ImageDataset, batch_size: Optional[int], reference: Optional[nn.Module],
              cached_reference: Optional[torch.Tensor], topk: Sequence[int], progress: Optional[ProgressCallback],
              cancel: Optional[CancelToken], target: torch.device, use_runtime: Optional[bool]) -> EvalResult:
    n = len(data)
    ks = sorted({int(k) for k in topk} | {1})
    labels_all = data.labels
    run = _forward_all(model, data.images, labels_all, ks[-1], batch_size,
                       progress if reference is None else scaled(progress, 0.0, 0.5), cancel, target, use_runtime)
    if reference is not None:
        # The reference runs in a pass of its own, not batch by batch beside the model: two onnxruntime
        # sessions taking turns run at half speed each on 2 cores (each one's idle threads spin while the
        # other one works), measured on a MobileNetV2-shaped model: 143 images/s each instead of 274.
        cached_reference = _forward_all(reference, data.images, None, 1, batch_size, scaled(progress, 0.5, 1.0),
                                        cancel, target, use_runtime, "reference model:").top1
    top_all, num_outputs = run.tally.top, run.tally.num_outputs
    assert top_all is not None
    acc: dict[int, Optional[float]] = {k: None for k in ks}
    if labels_all is not None:
        hits = (top_all == labels_all.unsqueeze(1)).cumsum(dim=1).clamp_(max=1).sum(dim=0)
        acc = {k: None if k > num_outputs else int(hits[k - 1]) / n for k in ks}
    return EvalResult(
        top1=acc[1], top5=acc.get(5),
        loss=None if labels_all is None else run.tally.loss_sum / n,
        agreement=None if cached_reference is None else int((top_all[:, 0] == cached_reference).sum()) / n,
        n=n, latency_ms_per_image=1000.0 * run.forward_s / n,
        latency_ms_per_batch=1000.0 * run.forward_s / run.batches, batch_size=run.batch_size,
        topk={k: acc[k] for k in ks if k in {int(t) for t in topk}})


def _forward_all(model: nn.Module, images: Any, labels: Optional[torch.Tensor], k_max: int,
                 batch_size: Optional[int], progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
                 target: torch.device, use_runtime: Optional[bool], what: str = "evaluated") -> _Pass:
    """Run ``model`` over every image in batches and tally its top-``k_max`` classes (and loss, with labels)."""
    n = int(images.shape[0])
    device, dtype = _input_kind(model)
    image_elements = int(images[0].numel())
    plan = _BatchPlan(batch_size, image_elements, timed=target.type != "cpu")
    # Per batch only the forward pass runs; top-k and loss are reduced a chunk of batches at a time (see
    # eval_tally: torch work between onnxruntime's batches slows onnxruntime down).
    tally = EvalTally(n, k_max, labels, output_kind_of(model))
    forward_s = 0.0
    n_batches = 0
    forward: Callable[[torch.Tensor], Any] = model
    checked_runtime = False
    start = 0
    # The first batch runs in torch (it decides whether onnxruntime repays an export, and checks its
    # outputs); at 224x224 torch is several times slower, so that probe is kept to a few images.
    probe = PROBE_IMAGES if plan.fixed is None and image_elements > 3 * 64 * 64 else None
    while start < n:
        check(cancel)
        probing = probe is not None and not checked_runtime
        size = probe if probing else plan.next_size()
        x = images[start:start + size]
        if x.device != device or x.dtype != dtype:
            x = x.to(device=device, dtype=dtype)
        t0 = time.perf_counter()
        with torch.inference_mode():
            if checked_runtime:
                out = forward(x)
            else:  # the first batch runs in torch and counts the work per image (for the runtime choice)
                with counting_macs(model) as macs:
                    out = model(x)
        elapsed = time.perf_counter() - t0
        forward_s += elapsed
        if not probing:  # the probe is not a batch-size candidate: its images decide on onnxruntime only
            plan.record(size, elapsed, int(x.shape[0]))
        stop = start + x.shape[0]
        if not checked_runtime:
            checked_runtime = True
            fast = _with_runtime(model, x, out, n - stop, macs.per_image, use_runtime, target)
            if fast is not None:
                forward = fast
                plan.run_in_runtime(image_elements)
        with torch.inference_mode():
            tally.add(start, class_scores(out))
        n_batches += 1
        start = stop
        report(progress, stop / n, f"{what} {stop}/{n} images")
    with torch.inference_mode():
        tally.flush()
    return _Pass(tally, forward_s, n_batches, plan.chosen)


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
        indices = ranked_classes(probs, min(k, probs.shape[1]))  # ties in class order, as evaluate ranks them
    return probs.gather(1, indices), indices
