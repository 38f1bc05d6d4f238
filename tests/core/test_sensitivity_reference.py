"""A sensitivity scan runs the original once for its agreement, not once per point."""

from __future__ import annotations

import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.sensitivity import layer_sensitivity, measure_sensitivity_job
from squeezestudio.core.model.zoo import zoo_handle


def test_the_original_runs_once_for_the_whole_scan_and_agreements_are_unchanged():
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8)
    data = ImageDataset(images=torch.randn(40, 1, 8, 8), labels=torch.arange(40) % 4, class_names=list("abcd"))
    calls = []
    original = handle.module
    # compressed copies carry the hook too (a deep copy): count only the original's own runs
    hook = original.register_forward_hook(lambda module, *_: calls.append(module is original))
    try:
        result = layer_sensitivity(handle, data, registry=default_registry(), prune_levels=(0.5, 0.9),
                                   quant_bits=(2,), batch_size=40)
    finally:
        hook.remove()
    assert len(result.points) == 9  # 3 layers x 3 levels
    assert sum(calls) == 2  # the baseline and the reference predictions: nothing per point
    for point in result.points:
        again = measure_sensitivity_job(handle, data, (point.layer, point.method, point.level),
                                        registry=default_registry(), batch_size=40)
        assert again.agreement == point.agreement and again.top1 == point.top1
