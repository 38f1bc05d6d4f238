"""Activation quantization: the grid, ranges from images, .sqz round trip, retraining, accuracy, bad options."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from squeezestudio.core.compression.activations import ActivationConfig, ActivationQuantization
from squeezestudio.core.compression.codec import decode_sqz, encode_sqz, size_report
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.fake_quant import FakeQuantize, QuantizedInputConv2d, measure_input_ranges
from squeezestudio.core.compression.pipeline import compress, needs_calibration
from squeezestudio.core.compression.recipe import Recipe, recipe_from_dict
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.errors import ArchitectureMismatchError, CodecError, RecipeError
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.model.handle import InputSpec, ModelHandle
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.training.finetune import finetune_compressed
from squeezestudio.core.training.loop import TrainConfig, train_classifier

REGISTRY = build_registry(plugins=False)
LENET5_LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))


def lenet5():
    torch.manual_seed(0)
    return zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=12)


CALIB = torch.randn(40, 1, 12, 12, generator=torch.Generator().manual_seed(1))
X = torch.randn(6, 1, 12, 12, generator=torch.Generator().manual_seed(2))


def reference_fake_quant(x: np.ndarray, low: float, high: float, bits: int) -> np.ndarray:
    """onnxruntime's activation grid (range widened to 0) and QuantizeLinear/DequantizeLinear, in numpy."""
    qmax = np.float32(2 ** bits - 1)
    rmin, rmax = np.float32(min(low, 0.0)), np.float32(max(high, 0.0))
    scale = np.float32((rmax - rmin) / qmax)
    zero = np.float32(np.clip(np.round(np.float32(0.0) - rmin / scale), 0, qmax))
    q = np.clip(np.rint(x.astype(np.float32) / scale) + zero, np.float32(0), qmax)
    return ((q - zero) * scale).astype(np.float32)


def lenet5_forward(m: nn.Module, x: torch.Tensor, quant=lambda name, t: t) -> torch.Tensor:
    """LeNet-5's forward written out, with ``quant(layer, input)`` before each weighted layer."""
    conv = lambda name, t, **kw: F.conv2d(quant(name, t), m.get_submodule(name).weight,  # noqa: E731
                                          m.get_submodule(name).bias, **kw)
    lin = lambda name, t: F.linear(quant(name, t), m.get_submodule(name).weight,  # noqa: E731
                                   m.get_submodule(name).bias)
    t = F.max_pool2d(torch.relu(conv("conv1", x, padding=2)), 2)
    t = F.max_pool2d(torch.relu(conv("conv2", t)), 2).flatten(1)
    return lin("fc3", torch.relu(lin("fc2", torch.relu(lin("fc1", t)))))


def test_outputs_differ_from_float_and_equal_a_reference_fake_quant():
    handle = lenet5()
    float_model = handle.module.eval()
    cm = compress(handle, Recipe(methods={"activations": {"bits": 4}}), registry=REGISTRY, calibration=CALIB)
    model = cm.handle.module.eval()
    assert all(isinstance(model.get_submodule(n).input_quant, FakeQuantize) for n in LENET5_LAYERS)
    assert isinstance(model.conv1, QuantizedInputConv2d)
    # each layer's range: min and max of its float input over the calibration images
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in LENET5_LAYERS}
    with torch.no_grad():
        lenet5_forward(float_model, CALIB, lambda name, t: seen[name].append(t) or t)
        ranges = {n: (float(torch.cat(v).min()), float(torch.cat(v).max())) for n, v in seen.items()}
        ref = lenet5_forward(float_model, X, lambda name, t: torch.from_numpy(
            reference_fake_quant(t.numpy(), *ranges[name], bits=4)))
        out, plain = model(X), float_model(X)
    assert torch.equal(out, ref)
    assert (out - plain).abs().max() > 1e-3  # 4-bit activations really change the outputs
    assert torch.equal(handle.module.conv1.weight, model.conv1.weight)  # the weights are not touched
    assert type(handle.module.conv1) is nn.Conv2d  # nor is the user's model


def test_sqz_round_trip_is_exact_and_the_size_is_the_file_length():
    cm = compress(lenet5(), Recipe(methods={"quantize": {"bits": 6}, "activations": {}},
                                   layers={"fc3": {"activations": {"bits": 12, "calibration": "percentile"}}}),
                  registry=REGISTRY, calibration=CALIB)
    data = encode_sqz(cm, registry=REGISTRY)
    assert size_report(cm, registry=REGISTRY).total_bytes == len(data)
    back = decode_sqz(data, registry=REGISTRY)
    ours, theirs = cm.handle.module.state_dict(), back.handle.module.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for name in LENET5_LAYERS:  # the ranges come back from the file, bit for bit
        mine, loaded = cm.handle.module.get_submodule(name).input_quant, back.handle.module.get_submodule(name).input_quant
        assert (mine.bits, mine.scale.item(), mine.zero_point.item()) == \
            (loaded.bits, loaded.scale.item(), loaded.zero_point.item())
    assert back.handle.module.fc3.input_quant.bits == 12 and back.handle.module.fc1.input_quant.bits == 8
    assert back.handle.architecture.modifications[-1]["inputs"]["fc1"][0] == 8
    with torch.no_grad():
        assert torch.equal(cm.handle.module.eval()(X), back.handle.module.eval()(X))
    assert encode_sqz(back, registry=REGISTRY) == data  # decoding and saving again writes the same bytes


def test_percentile_range_ignores_an_outlier_that_minmax_keeps():
    model = nn.Sequential(nn.Linear(4, 3))
    images = torch.randn(1000, 4, generator=torch.Generator().manual_seed(3))
    images[0, 0] = 1000.0
    minmax = measure_input_ranges(model, ["0"], images)["0"]
    clipped = measure_input_ranges(model, ["0"], images, percentiles={"0": 99.9})["0"]
    assert minmax[1] == 1000.0 and clipped[1] < 10.0 and clipped[0] == pytest.approx(minmax[0], abs=0.6)


def test_straight_through_gradient_inside_the_range_only():
    fq = FakeQuantize(8, scale=0.1, zero_point=10).train()  # range [-1.0, 24.5]
    x = torch.tensor([-5.0, -0.96, 0.33, 30.0], requires_grad=True)
    y = fq(x)
    y.sum().backward()
    assert torch.equal(y.detach(), torch.tensor([-1.0, -1.0, 0.3, 24.5]))
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))


@lru_cache(maxsize=1)
def _digits(split: str):
    return load_digits_split(split, SPEC)


@lru_cache(maxsize=1)
def _trained() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)
    train_classifier(handle.module, _digits("train"), None, TrainConfig(epochs=2, lr=2e-3, seed=0))
    return {k: v.clone() for k, v in handle.module.state_dict().items()}


def trained_handle():
    handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)
    handle.module.load_state_dict(_trained())
    return handle


def test_8_bit_activations_keep_accuracy_and_2_bits_lose_it():
    handle, val = trained_handle(), _digits("val")
    calibration = _digits("train").images[:256]
    top1 = evaluate(handle.module, val, use_runtime=False).top1
    assert top1 > 0.85
    accuracy = {}
    for bits in (8, 2):
        cm = compress(handle, Recipe(methods={"activations": {"bits": bits}}), registry=REGISTRY,
                      calibration=calibration)
        accuracy[bits] = evaluate(cm.handle.module, val, use_runtime=False).top1
    assert abs(accuracy[8] - top1) <= 0.01
    assert accuracy[2] < min(top1, accuracy[8]) - 0.015  # and the grid is really applied


def test_retraining_runs_through_the_quantizers_and_keeps_them():
    handle = trained_handle()
    recipe = Recipe(methods={"quantize": {"bits": 4}, "activations": {"bits": 4}})
    cm = compress(handle, recipe, registry=REGISTRY, calibration=_digits("train").images[:256])
    scales = {k: v.clone() for k, v in cm.handle.module.state_dict().items() if "input_quant" in k}
    tuned, result = finetune_compressed(cm, _digits("train"), None, TrainConfig(epochs=1, lr=1e-3, seed=1),
                                        registry=REGISTRY)
    assert len(result.history) == 1 and np.isfinite(result.history[0].train_loss)
    model = tuned.handle.module
    assert all(isinstance(model.get_submodule(n), nn.Linear) and hasattr(model.get_submodule(n), "input_quant")
               for n in ("fc1", "fc2", "fc3"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in scales.items())  # the ranges stay as calibrated
    assert not torch.equal(state["fc1.weight"], cm.handle.module.state_dict()["fc1.weight"])  # it learnt
    assert max(len(np.unique(row)) for row in state["fc1.weight"].numpy()) <= 16  # still 4 bits per channel
    back = decode_sqz(encode_sqz(tuned, registry=REGISTRY), registry=REGISTRY)
    assert all(torch.equal(v, back.handle.module.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("options, words", [
    ({"bits": 1}, "bits=1 is below the minimum"),
    ({"bits": 17}, "bits=17 is above the maximum"),
    ({"calibration": "entropy"}, "calibration must be one of minmax, percentile"),
    ({"percentile": 50}, "percentile=50"),
    ({"signed": True}, "unknown option"),
])
def test_bad_options_are_one_sentence(options, words):
    with pytest.raises(RecipeError, match=words) as info:
        compress(lenet5(), Recipe(methods={"activations": options}), registry=REGISTRY, calibration=CALIB)
    assert "\n" not in str(info.value)


def test_without_calibration_images_it_says_what_to_open():
    with pytest.raises(RecipeError, match="needs calibration images"):
        compress(lenet5(), Recipe(methods={"activations": {}}), registry=REGISTRY)
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(400, 10))
    handle = ModelHandle(module=module, name="bn", input_spec=InputSpec(1, 12, 12),
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    with pytest.raises(RecipeError, match="activations does not apply to layer 1"):
        compress(handle, Recipe(layers={"1": {"activations": {}}}), registry=REGISTRY, calibration=CALIB)
    cm = compress(handle, Recipe(methods={"activations": {}}), registry=REGISTRY, calibration=CALIB)
    assert [n for n, m in cm.handle.module.named_modules() if isinstance(m, FakeQuantize)] == \
        ["0.input_quant", "3.input_quant"]  # a global setting skips the BatchNorm


def test_calibration_is_asked_for_only_when_a_method_needs_it():
    assert needs_calibration(recipe_from_dict({"methods": {"activations": {}}}), REGISTRY)
    assert needs_calibration(recipe_from_dict({"layers": {"fc1": {"activations": {"bits": 4}}}}), REGISTRY)
    assert needs_calibration(recipe_from_dict({"stages": [{"methods": {"prune": {}}},
                                                          {"methods": {"activations": {}}}]}), REGISTRY)
    assert not needs_calibration(recipe_from_dict({"methods": {"prune": {}, "quantize": {}}}), REGISTRY)
    assert not needs_calibration(recipe_from_dict({"methods": {"prune": {}},
                                                   "layers": {"fc1": {"activations": None}}}), REGISTRY)


def test_a_damaged_record_is_a_codec_error():
    method, model = ActivationQuantization(), lenet5().module
    with pytest.raises(CodecError, match="incomplete"):
        method.rebuild(model, {"method": "activations", "layer": "fc1"})
    for grid in ([40, 0.1, 3], [8, -0.1, 3], [8, 0.1, 256], [8, 0.1, 2.5], [8, 0.1], "8", [True, 0.1, 0]):
        with pytest.raises(CodecError, match="not \\[bits 2-16"):
            method.rebuild(model, {"method": "activations", "inputs": {"fc1": grid}})
    with pytest.raises(ArchitectureMismatchError):
        method.rebuild(model, {"method": "activations", "inputs": {"relu1": [8, 0.1, 0]}})
    rebuilt = method.rebuild(model, {"method": "activations", "inputs": {"fc1": [6, 0.25, 7]}})
    assert str(rebuilt.fc1.input_quant) == "FakeQuantize(bits=6, scale=0.25, zero_point=7)"
    assert make_config(ActivationConfig, {"bits": "6"}) == ActivationConfig(bits=6)


def test_exports_write_the_float_model_and_the_int8_model_on_the_models_own_grids(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from squeezestudio.core.compression.fake_quant import without_input_quantizers
    from squeezestudio.core.io.export_onnx import export_onnx
    from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8

    cm = compress(lenet5(), Recipe(methods={"quantize": {"bits": 8}, "activations": {}},
                                   layers={"fc3": {"activations": {"bits": 6}}}), registry=REGISTRY, calibration=CALIB)
    export_onnx(cm.handle, tmp_path / "float.onnx")
    float_ops = {n.op_type for n in onnx.load(str(tmp_path / "float.onnx")).graph.node}
    assert not float_ops & {"Round", "Div"}  # the float file is the float model, no simulated quantizers
    plain = without_input_quantizers(cm.handle.module)
    assert type(plain.conv1) is nn.Conv2d and not hasattr(plain.conv1, "input_quant")
    assert type(cm.handle.module.conv1) is QuantizedInputConv2d  # the model itself keeps them

    result = export_onnx_int8(cm, tmp_path / "int8.onnx", CALIB)
    assert result.activation_layers == ["conv1", "conv2", "fc1", "fc2"]  # fc3's 6-bit grid is not uint8's
    proto = onnx.load(str(tmp_path / "int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producers = {out: node for node in proto.graph.node for out in node.output}
    for node in proto.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            layer = producers[node.input[1]].input[0].removesuffix(".weight_quantized")
            x_q = producers[producers[node.input[0]].input[0]]
            q = cm.handle.module.get_submodule(layer).input_quant
            own = float(inits[x_q.input[1]]) == float(q.scale) and int(inits[x_q.input[2]]) == int(q.zero_point)
            assert own == (layer != "fc3")  # fc3 keeps onnxruntime's calibrated 8-bit range
    session = ort.InferenceSession(result.data, providers=["CPUExecutionProvider"])
    int8 = session.run(None, {session.get_inputs()[0].name: X.numpy()})[0]
    with torch.no_grad():
        fake = cm.handle.module.eval()(X).numpy()
    assert np.array_equal(int8.argmax(1), fake.argmax(1)) and np.abs(int8 - fake).max() < 0.05
