"""Comparing two models: per-layer storage, accuracy, agreement and the images they disagree on."""

from __future__ import annotations

import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.codec import size_report
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.compare import compare_models
from squeezestudio.core.model.zoo import zoo_handle


def test_compare_reports_layers_accuracy_agreement_and_disagreements():
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8)
    data = ImageDataset(images=torch.randn(60, 1, 8, 8), labels=torch.randint(0, 4, (60,)),
                        class_names=list("abcd"))
    cm = compress(handle, recipe_from_dict({"methods": {"prune": {"sparsity": 0.9}},
                                            "layers": {"fc3": {"prune": None, "quantize": {"bits": 4}}}}), registry=default_registry())
    result = compare_models((handle.module, {}, None), (cm.handle.module, cm.encodings, size_report(cm, registry=default_registry())), data,
                            names=("original", "pruned"), sizes=(1000, 100), max_images=3)
    fc1_a, fc1_b = result.layers["fc1"]
    assert fc1_a.method == "dense" and fc1_a.bits_per_weight == 32.0 and fc1_a.sparsity == 0.0
    assert fc1_b.method == "pruned" and abs(fc1_b.sparsity - 0.9) < 0.01 and fc1_b.bytes < fc1_a.bytes
    assert result.layers["fc3"][1].method == "quantize 4b"
    with torch.no_grad():
        pa, pb = handle.module(data.images).argmax(1), cm.handle.module(data.images).argmax(1)
    assert result.agreement == int((pa == pb).sum()) / 60
    assert result.top1_b == int((pb == data.labels).sum()) / 60
    assert result.disagreement_count == int((pa != pb).sum()) > len(result.disagreements) == 3
    first = result.disagreements[0]
    assert first.top5_a[0][0] == "abcd"[int(pa[first.index])] and first.top5_a[0][0] != first.top5_b[0][0]
    assert len(first.top5_a) == 4  # top-5 of a 4-class model is all 4
    assert result.to_csv().splitlines()[1].startswith("fc1,")
    assert "agreement" in result.to_table()
