"""Weight sharing by k-means clustering (Deep Compression's "trained quantization").

Han, Mao and Dally, "Deep Compression" (ICLR 2016), section 3: the surviving
weights of a layer are clustered into k = 2**bits shared values; the layer
then stores a small codebook and one ``bits``-wide index per kept weight,
and the indices are Huffman coded by the codec (``entropy_coded``). Pruned
positions stay pruned: the mask of an earlier ``prune`` is kept and only the
kept weights are clustered. k-means runs on :mod:`.kmeans1d` (exact Lloyd,
fast because the data is scalar), starting from the paper's linear
initialisation by default.

Fine-tuning keeps the sharing: the codebook is the trainable thing. After
each optimizer step, the step the optimizer took on the weights of a cluster
is averaged (the default) or summed, applied to the centroid, and the weights
are rewritten from the codebook. The paper sums the gradients of a cluster,
which is what "sum" does with plain SGD; but Adam normalises every weight's
step to about ``lr`` whatever its gradient, so summing over a cluster of
thousands of weights moves its centroid thousands of times ``lr`` and wrecks
accuracy. "mean" moves each centroid by its weights' average step (about
``lr`` with Adam, ``-lr * mean gradient`` with SGD), which is safe with both;
choose "sum" with SGD to follow the paper exactly.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import torch

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.encoding import WeightEncoding, kept_positions
from squeezestudio.core.compression.kmeans1d import INITS, assign, kmeans1d
from squeezestudio.core.compression.method import ORDER_SHARE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


_MAX_WORKERS = 4
_PARALLEL_FROM = 1 << 20  # weights: below this, threads cost more than they save


def _weight_array(state: CompressionState, layer: str) -> np.ndarray:
    return state.layer(layer).weight.detach().cpu().numpy()


@dataclass(frozen=True)
class ClusterConfig:
    """Options of k-means weight sharing."""

    bits: int = param(5, minimum=1, maximum=8,
                      help="Bits per weight index: each layer keeps at most 2**bits shared values.")
    clusters: Optional[int] = param(None, minimum=1, maximum=256, optional=True,
                                    help="Exact number of shared values per layer (overrides bits when set).")
    init: str = param("linear", choices=INITS,
                      help="Initial centroids: linear (evenly spaced, best in Deep Compression), density or random.")
    iterations: int = param(300, minimum=1, maximum=10000,
                            help="Maximum number of k-means iterations per layer (each one is cheap).")
    entropy_coded: bool = param(True, help="Huffman-code the weight indices in the saved file.")
    centroid_update: str = param("mean", choices=("sum", "mean"),
                                 help="Fine-tuning moves a centroid by the mean (safe with Adam) or the sum "
                                      "(Deep Compression, for SGD) of its weights' steps.")

    @property
    def k(self) -> int:
        """Number of clusters asked for."""
        return int(self.clusters) if self.clusters is not None else 2 ** int(self.bits)

    @property
    def index_bits(self) -> int:
        """Width of one stored index."""
        return max(1, math.ceil(math.log2(self.k)))


def cluster_weight(weight: np.ndarray, mask: Optional[np.ndarray], cfg: ClusterConfig,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> WeightEncoding:
    """Cluster the kept values of one weight tensor into a shared codebook.

    Unused and duplicate centroids are dropped, so the codebook may be
    shorter than k (never longer); indices are ``uint8`` (k <= 256). The
    encoding shares ``mask`` (masks are never edited in place once built),
    so its kept positions are found once for the whole pipeline.
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    kept = flat if mask is None else flat.take(kept_positions(mask))
    if kept.size == 0:
        codebook = np.zeros(1, dtype=np.float32)
        symbols = np.zeros(0, dtype=np.uint8)
    else:
        k = min(cfg.k, kept.size)
        result = kmeans1d(kept, k, init=cfg.init, max_iter=cfg.iterations, with_labels=False, with_sse=False,
                          progress=progress, cancel=cancel)
        codebook = np.unique(result.centroids.astype(np.float32))
        labels = assign(kept, codebook.astype(np.float64))
        used = np.bincount(labels, minlength=codebook.size) > 0
        remap = np.cumsum(used) - 1
        codebook = codebook[used]
        symbols = remap[labels].astype(np.uint8)
    return WeightEncoding(shape=tuple(weight.shape), kind="codebook",
                          mask=mask,
                          symbols=symbols, bits=cfg.index_bits, codebook=codebook,
                          entropy_coded=cfg.entropy_coded)


class KMeansClustering(CompressionMethod):
    """Built-in method ``cluster``."""

    name = "cluster"
    label = "k-means weight sharing"
    description = "Replaces each layer's weights by 2**bits shared values found with k-means; stores small indices."
    order = ORDER_SHARE
    config_class = ClusterConfig
    exclusive_with = ("quantize",)
    paper = "Han, Mao and Dally, Deep Compression, ICLR 2016"

    def apply(self, state: CompressionState, layer_configs: dict[str, Any],
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelToken] = None) -> None:
        """Cluster every named layer, keeping any pruning mask.

        Layers are independent, and k-means here is numpy work that releases
        the GIL (sorting, cumulative sums, searches), so big models cluster
        their layers on a few threads, largest first. Results are stored in
        the given layer order from this thread, so the outcome is the same as
        one layer at a time; progress then advances per layer.
        """
        sizes = {layer: state.layer(layer).weight.numel() for layer in layer_configs}
        total = max(1, sum(sizes.values()))
        workers = min(_MAX_WORKERS, os.cpu_count() or 1, len(layer_configs))
        if workers <= 1 or total < _PARALLEL_FROM:
            done = 0
            for layer, cfg in layer_configs.items():
                check(cancel)
                sub = scaled(progress, done / total, (done + sizes[layer]) / total)
                enc = cluster_weight(_weight_array(state, layer), state.mask(layer), cfg, sub, cancel)
                state.set_encoding(layer, enc)
                done += sizes[layer]
                report(progress, done / total, f"clustered {layer} into {enc.codebook.size} values")
        else:
            self._apply_threaded(state, layer_configs, sizes, workers, progress, cancel)
        state.log.append(f"cluster: {len(layer_configs)} layers")

    @staticmethod
    def _apply_threaded(state: CompressionState, layer_configs: dict[str, Any], sizes: dict[str, int],
                        workers: int, progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> None:
        check(cancel)
        total = max(1, sum(sizes.values()))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="squeezestudio-cluster")
        try:
            futures = {layer: pool.submit(cluster_weight, _weight_array(state, layer), state.mask(layer),
                                          layer_configs[layer], None, cancel)
                       for layer in sorted(layer_configs, key=lambda name: -sizes[name])}
            done = 0
            for layer in layer_configs:
                enc = futures[layer].result()
                state.set_encoding(layer, enc)
                done += sizes[layer]
                report(progress, done / total, f"clustered {layer} into {enc.codebook.size} values")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def finetune_hooks(self, state: CompressionState,
                       layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Deep Compression's centroid fine-tuning (see :class:`CentroidTraining`)."""
        layers = {name: cfg for name, cfg in layer_configs.items() if state.encoding(name).kind == "codebook"}
        if not layers:
            return None
        trainer = CentroidTraining(state, layers)
        return FinetuneHooks(before_step=trainer.before_step, after_step=trainer.after_step,
                             finish=trainer.finish)


class CentroidTraining:
    """Keeps a clustered layer's sharing exact while fine-tuning trains its codebook.

    Everything per step is torch, on the weight's device: each layer's
    symbols, kept positions and codebook live as tensors, so a step costs a
    few gathers and one ``index_add_`` per layer, never a numpy round trip.

    ``before_step`` (after ``backward``) keeps the kept weights' gradients,
    from which ``centroid_grads`` gives each centroid's gradient, the sum of
    its weights' gradients as in the paper (summed only when read).
    ``after_step`` measures what the optimizer did to each kept weight, sums
    (``centroid_update="sum"``) or averages (``"mean"``) those steps per
    centroid, moves the centroids, and rewrites the weight in place as
    ``codebook[symbols]`` at kept positions and 0 elsewhere: pruned weights
    return to zero and weights of one cluster are identical again. With plain
    SGD and "sum" the centroid update is exactly ``-lr * centroid_grads``.
    ``finish`` stores the final codebook, read from the weights (which may be
    an earlier epoch's, restored by the training loop), through
    :meth:`CompressionState.set_encoding` once; until then the state's
    encodings still hold the codebooks fine-tuning started from.
    """

    def __init__(self, state: CompressionState, layer_configs: dict[str, ClusterConfig]) -> None:
        self.state = state
        self.configs = layer_configs
        self._grads: dict[str, torch.Tensor] = {}
        self._layers: dict[str, _SharedLayer] = {}
        for layer in layer_configs:
            enc = state.encoding(layer)
            if enc.kind == "codebook" and enc.symbols is not None and enc.codebook is not None \
                    and enc.symbols.size:
                self._layers[layer] = _SharedLayer(enc, state.layer(layer).weight)

    @property
    def centroid_grads(self) -> dict[str, np.ndarray]:
        """Each centroid's gradient at the last step (float64), summed only when asked for."""
        with torch.no_grad():
            return {layer: self._layers[layer].per_centroid(kept.double()).cpu().numpy()
                    for layer, kept in self._grads.items()}

    def before_step(self) -> None:
        for layer, shared in self._layers.items():
            grad = shared.weight.grad
            if grad is not None:  # a gather copies; a dense layer's view must be copied
                kept = shared.kept(grad)
                self._grads[layer] = kept if shared.positions is not None else kept.clone()

    def after_step(self) -> None:
        with torch.no_grad():
            for layer, shared in self._layers.items():
                moved = shared.per_centroid(shared.kept(shared.weight) - shared.values)
                if self.configs[layer].centroid_update == "mean":
                    moved /= shared.divisor
                shared.codebook += moved
                shared.write()

    def finish(self) -> None:
        for layer, shared in self._layers.items():
            enc = self.state.encoding(layer)
            with torch.no_grad():
                now = shared.kept(shared.weight).double()
                sums = shared.per_centroid(now)
                used = shared.counts > 0
                start = torch.from_numpy(np.asarray(enc.codebook, dtype=np.float64).reshape(-1))
                codebook = torch.where(used, sums / shared.counts.clamp_min(1.0), start.to(sums.device)).float()
            new = codebook.cpu().numpy().reshape(np.shape(enc.codebook))
            self.state.set_encoding(layer, replace(enc, codebook=new))


class _SharedLayer:
    """One clustered weight as tensors: kept positions, centroid of each, codebook, current values."""

    def __init__(self, enc: WeightEncoding, weight: torch.Tensor) -> None:
        device = weight.device
        self.weight = weight
        cb = np.asarray(enc.codebook, dtype=np.float32)
        groups = np.asarray(enc.symbols).astype(np.int64)
        if cb.ndim == 2:  # one codebook row per output channel: flatten to one table
            groups = enc.channel_of_kept() * cb.shape[1] + groups
        self.groups = torch.from_numpy(groups).to(device)
        self.size = int(cb.size)
        self.positions = None if enc.mask is None else \
            torch.from_numpy(kept_positions(enc.mask).astype(np.int64)).to(device)
        self.codebook = torch.from_numpy(cb.reshape(-1).copy()).to(device)
        self.counts = torch.bincount(self.groups, minlength=self.size).to(torch.float64)
        self.divisor = self.counts.clamp_min(1.0).to(self.codebook.dtype)
        self.values = self.codebook.index_select(0, self.groups)

    def kept(self, tensor: torch.Tensor) -> torch.Tensor:
        flat = tensor.detach().reshape(-1)
        return flat if self.positions is None else flat.index_select(0, self.positions)

    def per_centroid(self, kept: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.size, dtype=kept.dtype, device=kept.device)
        return out.index_add_(0, self.groups, kept)

    def write(self) -> None:
        """weight = codebook[symbols] at kept positions, 0 elsewhere (in place)."""
        self.values = self.codebook.index_select(0, self.groups)
        weight = self.weight.detach()
        if self.positions is None:
            weight.copy_(self.values.view(weight.shape))
        elif weight.is_contiguous():
            flat = weight.view(-1)
            flat.zero_()
            flat.scatter_(0, self.positions, self.values)
        else:
            dense = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device)
            weight.copy_(dense.scatter_(0, self.positions, self.values).view(weight.shape))
