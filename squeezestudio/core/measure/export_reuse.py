"""One export per model structure: later modules of that structure get the same graph with their own weights.

The in-memory ONNX export costs 0.25-0.3 s on a 224x224 MobileNetV2 or
ResNet-18 here, about as long as onnxruntime takes for 80 images. A sweep,
a sensitivity scan or a search measures one model after another whose
graphs are identical and whose weights differ (pruned, clustered or
quantized weights are decoded into dense ones), so the graph of the first
export is kept and each later module's tensors are written into a copy.

A copy is made only where that is provably the same model:
- the structure matches exactly: every submodule's class, its plain
  attributes (bits, strides, flags), and every state_dict entry's name,
  shape and dtype;
- no submodule has hooks or parametrizations (their behaviour is code the
  structure does not show);
- every floating state_dict tensor is an initializer of the graph under its
  own name, and nothing else is (the exporter merges initializers with
  equal values, such as two fresh BatchNorms, and then one name would
  carry both layers' values).
Otherwise the module is exported afresh. The caller still checks the
graph's outputs against torch on the first batch
(:func:`~squeezestudio.core.measure.runtime_forward.runtime_forward_for`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

KEPT_STRUCTURES = 2
"""Graphs kept (a scan alternates between at most the original's and the compressed model's structure)."""

MAX_KEPT_BYTES = 256 * 1024 * 1024
"""A larger export is not parsed to be kept (parsing and rewriting it would cost about what exporting does)."""

_PLAIN = (bool, int, float, str, type(None))


def _plain_attributes(module: nn.Module) -> list[tuple[str, str]]:
    """The module's own settings that are not tensors or submodules (``stride``, ``bits``, ``training``...)."""
    out = []
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") and name != "_squeezestudio_output_kind":
            continue
        if isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)):
            out.append((name, repr(value)))
    return out


def structure_key(module: nn.Module, example: torch.Tensor,
                  state: Optional[dict[str, torch.Tensor]] = None) -> Optional[str]:
    """A digest of everything but the weights' values, or None when the module must always be exported.

    ``state`` is ``module.state_dict()`` when the caller has it already.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(example.shape[1:]), str(example.dtype))).encode())
    for name, sub in module.named_modules():
        if sub._forward_hooks or sub._forward_pre_hooks or getattr(sub, "parametrizations", None):
            return None
        h.update(repr((name, type(sub).__module__, type(sub).__qualname__, _plain_attributes(sub))).encode())
    for name, tensor in (module.state_dict() if state is None else state).items():
        h.update(repr((name, tuple(tensor.shape), str(tensor.dtype))).encode())
    return h.hexdigest()


def _floating(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state_dict entries an export writes as float initializers (not integer counters)."""
    return {name: t for name, t in state.items() if t.is_floating_point()}


def _reusable(proto: onnx.ModelProto, weights: dict[str, torch.Tensor]) -> bool:
    """True when the graph's initializers are exactly the module's floating tensors, each under its own name."""
    inits = {t.name: t for t in proto.graph.initializer}
    floating = {name for name, t in inits.items() if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                                                       onnx.TensorProto.FLOAT16)}
    if floating != set(weights):
        return False
    return all(tuple(inits[name].dims) == tuple(weights[name].shape) for name in weights)


class ExportTemplates:
    """The graphs of the last :data:`KEPT_STRUCTURES` structures exported (thread-safe)."""

    def __init__(self, size: int = KEPT_STRUCTURES) -> None:
        self._size = size
        self._graphs: OrderedDict[str, tuple[onnx.ModelProto, list[str]]] = OrderedDict()  # graph, weight names
        self._lock = threading.Lock()
        self.reused = 0  # how many exports were saved (for tests and benchmarks)

    def onnx_bytes(self, module: nn.Module, example: torch.Tensor, export: Callable[[], bytes]) -> bytes:
        """``module`` as ONNX bytes: a kept graph with its weights written in, else ``export()`` (then kept)."""
        state = module.state_dict()
        key = structure_key(module, example, state)  # None: hooks or parametrizations, never reused
        if key is None:
            return export()
        with self._lock:
            template = self._graphs.get(key)
            if template is not None:
                self._graphs.move_to_end(key)
        if template is not None:
            return self._with_weights(template, _floating(state))
        data = export()
        if len(data) > MAX_KEPT_BYTES:
            return data
        proto = onnx.load_from_string(data)
        if _reusable(proto, _floating(state)):
            order = [t.name for t in proto.graph.initializer]
            del proto.graph.initializer[:]  # kept without its weights: each reuse writes its own
            with self._lock:
                self._graphs[key] = (proto, order)
                while len(self._graphs) > self._size:
                    self._graphs.popitem(last=False)
        return data

    def _with_weights(self, template: tuple[onnx.ModelProto, list[str]], weights: dict[str, torch.Tensor]) -> bytes:
        graph, order = template
        proto = onnx.ModelProto()
        proto.CopyFrom(graph)  # the graph only: the weights are not copied twice
        proto.graph.initializer.extend(
            numpy_helper.from_array(np.ascontiguousarray(weights[name].detach().cpu().numpy()), name)
            for name in order)
        with self._lock:
            self.reused += 1
        return proto.SerializeToString()


shared_templates = ExportTemplates()
"""The process's templates, used by every evaluation."""
