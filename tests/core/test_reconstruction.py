"""Calibration capture and layer-wise reconstruction, down to a trained toy model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.substitution.calibration import calibration_images, capture_layer_io
from squeezestudio.core.compression.substitution.fire_module import ConvGeometry, make_fire
from squeezestudio.core.compression.substitution.reconstruction import reconstruct_layer, relative_error
from squeezestudio.core.compression.fire import FireConfig, FireMethod
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import DataError
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.progress import CancelToken, Cancelled


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Two shared cores: one intra-op thread is ~10x faster here than oversubscribing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _toy(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def _toy_data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 8x8 images: a bright bar in one of four places, plus noise."""
    g = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for i, c in enumerate(labels.tolist()):
        if c < 2:
            images[i, 0, 2 + 3 * c, :] += 1.5
        else:
            images[i, 0, :, 2 + 3 * (c - 2)] += 1.5
    return images, labels


def _trained_toy() -> tuple[nn.Sequential, torch.Tensor]:
    model = _toy()
    images, labels = _toy_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
    return model.eval(), images


def test_capture_matches_a_manual_forward_and_respects_the_memory_cap():
    model = _toy().eval()
    images = torch.randn(20, 1, 8, 8)
    io = capture_layer_io(model, "3", images, batch_size=6)
    with torch.no_grad():
        expected_in = model[2](model[1](model[0](images)))
        expected_out = model[3](expected_in)
    assert torch.allclose(io.inputs, expected_in) and torch.allclose(io.outputs, expected_out)
    capped = capture_layer_io(model, "3", images, batch_size=6, max_elements=16 * 8 * 8 * 5)
    assert capped.inputs.shape[0] == 5 and capped.outputs.shape[0] == 5
    assert capture_layer_io(model, "3", images, max_images=3, want_inputs=False).inputs is None


def test_calibration_images_accepts_tensors_and_datasets_and_rejects_junk():
    class FakeDataset:
        images = torch.zeros(2, 1, 4, 4)

    assert calibration_images(None) is None
    assert calibration_images(FakeDataset()).shape == (2, 1, 4, 4)
    with pytest.raises(DataError):
        calibration_images(torch.zeros(3, 4))


def test_reconstruction_fits_a_random_fire_to_a_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1)
    fire = make_fire(ConvGeometry.from_conv(conv), 6, 4, 4, squeeze_relu=False)
    x = torch.randn(64, 6, 8, 8)
    with torch.no_grad():
        y = conv(x)
    result = reconstruct_layer(fire, x, y, steps=150, lr=1e-2, time_budget_s=60.0)
    assert result.steps == 150 and result.seconds > 0
    assert result.after_error < 0.5 * result.before_error
    assert relative_error(fire, x, y) == pytest.approx(result.after_error, rel=1e-5)


def test_reconstruction_never_makes_things_worse_and_can_be_cancelled():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    fire = make_fire(ConvGeometry.from_conv(conv), 3, 0, 4, squeeze_relu=False)
    x = torch.randn(16, 3, 6, 6)
    with torch.no_grad():
        y = conv(x)
    result = reconstruct_layer(fire, x, y, steps=5, lr=10.0)  # absurd lr: the start is kept
    assert result.after_error <= result.before_error
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        reconstruct_layer(fire, x, y, steps=5, cancel=token)
    with pytest.raises(DataError):
        reconstruct_layer(fire, x, y[:3])


def _model_error(original: nn.Module, changed: nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        a, b = original(images), changed(images)
    return float(((a - b) ** 2).sum() / (a ** 2).sum())


def test_on_a_trained_toy_svd_beats_random_and_reconstruction_beats_svd():
    model, images = _trained_toy()
    handle = ModelHandle(module=model, name="toy", input_spec=InputSpec(1, 8, 8, (0.0,), (1.0,)),
                         class_names=list("abcd"), source_format="zoo",
                         architecture=ArchitectureSpec(kind="graph"))
    errors = {}
    for init in ("random", "svd", "svd+reconstruct"):
        torch.manual_seed(0)
        state = CompressionState.from_handle(handle)
        state.calibration = images[:128]  # the optional field the method reads
        config = FireConfig(squeeze_ratio=0.5, pct3x3=0.75, init=init, reconstruct_steps=150)
        FireMethod().apply(state, {"3": config, "7": config})
        errors[init] = _model_error(model, state.module, images[128:])
    assert errors["svd"] < errors["random"]
    assert errors["svd+reconstruct"] < errors["svd"]
