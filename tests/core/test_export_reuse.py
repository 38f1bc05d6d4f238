"""Reusing one export's graph for the next module of the same structure gives the very same model.

A reused graph with another module's weights written in must equal a fresh
export of that module; anything the structure cannot vouch for (hooks,
initializers merged by the exporter, another setting of a layer) is
exported afresh.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.measure.export_reuse import ExportTemplates, shared_templates, structure_key
from squeezestudio.core.measure.runtime_forward import RuntimeForward, export_in_memory


def _net(padding: int = 1, bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 6, 3, padding=padding)] + ([nn.BatchNorm2d(6), nn.BatchNorm2d(6)] if bn else []) + \
        [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)]
    return nn.Sequential(*layers).eval()


def _other_weights(model: nn.Module) -> nn.Module:
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-0.7).add_(0.05)
    return other


def _bytes(templates: ExportTemplates, model: nn.Module, x: torch.Tensor, calls: list) -> bytes:
    def export() -> bytes:
        calls.append(1)
        return export_in_memory(model, x[:1])
    return templates.onnx_bytes(model, x[:1], export)


def test_a_reused_graph_equals_a_fresh_export_of_the_new_weights():
    templates, calls, x = ExportTemplates(), [], torch.randn(5, 3, 12, 12)
    first = _net()
    second = _other_weights(first)
    _bytes(templates, first, x, calls)
    reused = _bytes(templates, second, x, calls)
    assert len(calls) == 1 and templates.reused == 1
    fresh = RuntimeForward(export_in_memory(second, x[:1]), 1)(x)
    assert torch.equal(RuntimeForward(reused, 1)(x), fresh)
    with torch.no_grad():
        assert torch.allclose(fresh, second(x), atol=1e-5)


def test_anything_the_structure_cannot_vouch_for_is_exported_again():
    x = torch.randn(2, 3, 12, 12)
    assert structure_key(_net(padding=1), x) != structure_key(_net(padding=0), x)  # same shapes, other layer
    hooked = _net()
    hooked[0].register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    assert structure_key(hooked, x) is None
    # Two fresh BatchNorms hold equal values: the exporter merges their initializers, so one name would carry
    # both layers' weights. Such a graph is never kept.
    templates, calls = ExportTemplates(), []
    merged = _net(bn=True)
    _bytes(templates, merged, x, calls)
    changed = copy.deepcopy(merged)
    with torch.no_grad():
        changed[2].weight.fill_(3.0)  # now the two BatchNorms differ
    data = _bytes(templates, changed, x, calls)
    assert len(calls) == 2 and templates.reused == 0
    with torch.no_grad():
        assert torch.allclose(RuntimeForward(data, 1)(x), changed(x), atol=1e-5)


def test_evaluating_models_of_one_structure_exports_once_with_the_same_numbers():
    g = torch.Generator().manual_seed(0)
    # 72x72: large enough for a torch probe batch before onnxruntime takes over (smaller sets fit one batch)
    data = ImageDataset(images=torch.randn(40, 3, 72, 72, generator=g), labels=torch.randint(0, 4, (40,), generator=g),
                        class_names=list("abcd"))
    first, second = _net(), _other_weights(_net())
    before = shared_templates.reused
    evaluate(first, data, use_runtime=True)
    reused = evaluate(second, data, use_runtime=True)
    assert shared_templates.reused == before + 1
    shared_templates._graphs.clear()  # the same evaluation with a fresh export
    fresh = evaluate(second, data, use_runtime=True)
    assert (reused.top1, reused.loss) == (fresh.top1, fresh.loss)
