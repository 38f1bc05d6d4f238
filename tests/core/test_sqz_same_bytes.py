"""One size per configuration: the stored metrics never change a file's length; repeated runs are identical."""

from __future__ import annotations

import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.codec import decode_sqz, encode_sqz
from squeezestudio.core.compression.codec.file_metrics import metrics_for_file
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.measure_recipe import measure_recipe
from squeezestudio.core.model.zoo import zoo_handle

RECIPE = {"methods": {"prune": {"sparsity": 0.6}, "cluster": {"bits": 4}}}


def _setup():
    torch.manual_seed(0)
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32)
    data = ImageDataset(images=torch.randn(40, 1, 32, 32), labels=torch.randint(0, 10, (40,)),
                        class_names=[str(i) for i in range(10)])
    return handle, data


def test_same_configuration_gives_identical_bytes_whatever_was_measured():
    handle, data = _setup()
    with_reference = measure_recipe(handle, recipe_from_dict(RECIPE), data, reference=handle.module, registry=default_registry())
    again = measure_recipe(handle, recipe_from_dict(RECIPE), data, reference=handle.module, registry=default_registry())
    no_reference = measure_recipe(handle, recipe_from_dict(RECIPE), data, registry=default_registry())  # e.g. a sweep without agreement
    no_data = measure_recipe(handle, recipe_from_dict(RECIPE), None, registry=default_registry())       # compress --data none
    assert with_reference.sqz_bytes == again.sqz_bytes  # byte-identical on a repeated run
    sizes = {m.size_bytes for m in (with_reference, no_reference, no_data)}
    assert len(sizes) == 1, sizes
    assert with_reference.evaluation.latency_ms_per_image > 0  # measured, but not written into the file
    back = decode_sqz(with_reference.sqz_bytes, registry=default_registry()).metrics
    assert abs(back["top1"] - with_reference.evaluation.top1) < 1e-6 and "latency_ms_per_image" not in back


def test_metric_block_has_one_length_for_any_values():
    lengths = {len(str(metrics_for_file(m))) for m in
               ({}, {"top1": 1.0, "loss": 12345.678, "n": 10000}, {"top1": 0.0, "agreement": None},
                {"top1": float("nan"), "top5": -0.5, "loss": 1e-120, "n": 3})}
    assert len(lengths) == 1
