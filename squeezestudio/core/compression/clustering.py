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
is summed (the paper: the gradients of a cluster are summed and applied to its
centroid, which is exactly this for plain SGD) or averaged, applied to the
centroid, and the weights are rewritten from the codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import torch

from squeezestudio.core.compression.config import param
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.kmeans1d import INITS, assign, kmeans1d
from squeezestudio.core.compression.method import ORDER_SHARE, CompressionMethod, FinetuneHooks
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled


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
    centroid_update: str = param("sum", choices=("sum", "mean"),
                                 help="Fine-tuning moves a centroid by the sum (paper, for SGD) or mean of its weights' steps.")

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
    shorter than k (never longer); indices are ``uint8`` (k <= 256).
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    kept = flat if mask is None else flat[mask]
    if kept.size == 0:
        codebook = np.zeros(1, dtype=np.float32)
        symbols = np.zeros(0, dtype=np.uint8)
    else:
        k = min(cfg.k, kept.size)
        result = kmeans1d(kept, k, init=cfg.init, max_iter=cfg.iterations, with_labels=False,
                          progress=progress, cancel=cancel)
        codebook = np.unique(result.centroids.astype(np.float32))
        labels = assign(kept, codebook.astype(np.float64))
        used = np.bincount(labels, minlength=codebook.size) > 0
        remap = np.cumsum(used) - 1
        codebook = codebook[used]
        symbols = remap[labels].astype(np.uint8)
    return WeightEncoding(shape=tuple(weight.shape), kind="codebook",
                          mask=None if mask is None else mask.copy(),
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
        """Cluster every named layer, keeping any pruning mask."""
        sizes = {layer: state.layer(layer).weight.numel() for layer in layer_configs}
        total = max(1, sum(sizes.values()))
        done = 0
        for layer, cfg in layer_configs.items():
            check(cancel)
            sub = scaled(progress, done / total, (done + sizes[layer]) / total)
            weight = state.layer(layer).weight.detach().cpu().numpy()
            enc = cluster_weight(weight, state.mask(layer), cfg, sub, cancel)
            state.set_encoding(layer, enc)
            done += sizes[layer]
            report(progress, done / total, f"clustered {layer} into {enc.codebook.size} values")
        state.log.append(f"cluster: {len(layer_configs)} layers")

    def finetune_hooks(self, state: CompressionState,
                       layer_configs: dict[str, Any]) -> Optional[FinetuneHooks]:
        """Deep Compression's centroid fine-tuning (see :class:`CentroidTraining`)."""
        layers = {name: cfg for name, cfg in layer_configs.items() if state.encoding(name).kind == "codebook"}
        if not layers:
            return None
        trainer = CentroidTraining(state, layers)
        return FinetuneHooks(before_step=trainer.before_step, after_step=trainer.after_step)


class CentroidTraining:
    """Keeps a clustered layer's sharing exact while fine-tuning trains its codebook.

    ``before_step`` (after ``backward``) records each centroid's gradient,
    the sum of its weights' gradients (``centroid_grads``, as in the paper).
    ``after_step`` measures what the optimizer did to each weight, sums (or
    averages, per ``centroid_update``) those steps per centroid, moves the
    centroids, and rewrites every weight from the codebook through
    :meth:`CompressionState.set_encoding`: pruned weights return to zero and
    weights of one cluster are identical again. With plain SGD the centroid
    update is exactly ``-lr * centroid_grads``.
    """

    def __init__(self, state: CompressionState, layer_configs: dict[str, ClusterConfig]) -> None:
        self.state = state
        self.configs = layer_configs
        self.centroid_grads: dict[str, np.ndarray] = {}

    def _kept(self, layer: str, tensor: torch.Tensor) -> np.ndarray:
        flat = tensor.detach().reshape(-1).cpu().numpy().astype(np.float64)
        mask = self.state.mask(layer)
        return flat if mask is None else flat[mask]

    def before_step(self) -> None:
        for layer in self.configs:
            enc = self.state.encoding(layer)
            grad = self.state.layer(layer).weight.grad
            if grad is None or enc.symbols is None or enc.codebook is None:
                continue
            g = self._kept(layer, grad)
            self.centroid_grads[layer] = np.bincount(enc.symbols, weights=g, minlength=enc.codebook.size)

    def after_step(self) -> None:
        for layer, cfg in self.configs.items():
            enc = self.state.encoding(layer)
            if enc.kind != "codebook" or enc.symbols is None or enc.codebook is None or enc.symbols.size == 0:
                continue
            now = self._kept(layer, self.state.layer(layer).weight)
            step = now - enc.kept_values().astype(np.float64)
            moved = np.bincount(enc.symbols, weights=step, minlength=enc.codebook.size)
            if cfg.centroid_update == "mean":
                moved /= np.maximum(np.bincount(enc.symbols, minlength=enc.codebook.size), 1)
            codebook = (enc.codebook.astype(np.float64) + moved).astype(np.float32)
            self.state.set_encoding(layer, replace(enc, codebook=codebook))
