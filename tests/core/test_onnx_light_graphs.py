"""The nine classic graphs onnx ships (``onnx/backend/test/data/light/``), end to end.

Their weights are ``ConstantOfShape`` fills; each graph gets random weights
of the right shapes (He-scaled, so activations stay in range) as ordinary
initializers, and its final Softmax is cut off so the logits are compared
(a saturated softmax would hide differences). Each graph then loads through
:func:`load_onnx`, is inspected, compressed (pruning + clustering on its
layers of up to ``_COMPRESSED_LAYER_LIMIT`` weights, the others dense, to
keep the test fast), round-trips through ``.sqz``, and matches onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from squeezestudio.core.compression.codec import decode_sqz, encode_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import recipe_from_dict, weighted_layers
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.io.loading.onnx_import import load_onnx
from squeezestudio.core.model.inspection import inspect_model

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
GRAPHS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
          "vgg19", "zfnet512"]
_COMPRESSED_LAYER_LIMIT = 300_000


def _random_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Replace every ConstantOfShape fill of a constant shape with a random initializer; drop a final Softmax."""
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    rng = np.random.default_rng(seed)
    kept, filled = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = [int(v) for v in shapes[node.input[0]]]
            if len(shape) >= 2:  # weights: He-uniform (a random block repeated: fast for 100M weights)
                bound = np.float32(np.sqrt(6.0 / max(int(np.prod(shape[1:])), 1)))
                block = (rng.random(min(int(np.prod(shape)), 1 << 20), dtype=np.float32) * 2 - 1) * bound
                value = np.resize(block, shape)
            else:  # scales, biases, statistics: positive (variances must be)
                value = rng.random(shape, dtype=np.float32) + np.float32(0.5)
            filled.append(numpy_helper.from_array(value, node.output[0]))
        else:
            kept.append(node)
    if kept[-1].op_type == "Softmax" and kept[-1].output[0] == graph.output[0].name:
        logits = kept.pop().input[0]
        graph.output[0].name = logits
    used = {n for node in kept for n in node.input}
    initializers = [t for t in list(graph.initializer) + filled if t.name in used]
    names = {t.name for t in initializers}
    inputs = [i for i in graph.input if i.name in used and i.name not in names]
    del graph.node[:], graph.initializer[:], graph.input[:]
    graph.node.extend(kept)
    graph.initializer.extend(initializers)
    graph.input.extend(inputs)
    return model


def _ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run once: skip optimizing
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _close(got: np.ndarray, want: np.ndarray) -> float:
    """Max absolute difference relative to the output's scale."""
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))


_HEAVY = {"bvlc_alexnet", "vgg19", "zfnet512"}  # 60-143M weights each: most of this file's time


@pytest.mark.parametrize("name", [pytest.param(g, marks=pytest.mark.slow) if g in _HEAVY else g for g in GRAPHS])
def test_light_graph_loads_compresses_round_trips_and_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.onnx"
    onnx.save(_random_weights(onnx.load(str(LIGHT / f"light_{name}.onnx"))), str(path))
    handle = load_onnx(path)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = _ort_logits(path, x).reshape(1, -1)
    with torch.no_grad():
        got = handle.module(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (1, 1000)
    assert _close(got, want) <= 1e-4, name

    report = inspect_model(handle)
    params = sum(p.numel() for p in handle.module.parameters())
    assert report.total_params == params and len(report.layers) >= len(weighted_layers(handle.module))

    small = [n for n, m in weighted_layers(handle.module).items()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.numel() <= _COMPRESSED_LAYER_LIMIT]
    assert small
    recipe = recipe_from_dict({"layers": {n: {"prune": {"sparsity": 0.5}, "cluster": {"bits": 4}} for n in small}})
    registry = default_registry()
    cm = compress(handle, recipe, registry=registry)
    enc = cm.encodings[f"{small[0]}.weight"]
    assert enc.codebook is not None and enc.codebook.size <= 16 and enc.mask is not None
    back = decode_sqz(encode_sqz(cm, registry=registry), registry=registry)
    with torch.no_grad():
        compressed = cm.handle.module(torch.from_numpy(x))
        reloaded = back.handle.module(torch.from_numpy(x))
    assert reloaded.shape == (1, 1000) and torch.allclose(reloaded, compressed, rtol=0, atol=1e-5)
    assert not torch.allclose(compressed, torch.from_numpy(got), atol=1e-6)  # compression changed the model
