"""Changing the open model's input inside a session: checked first, then points and data dropped."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.errors import PreprocessingError
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.loading import save_safetensors
from squeezestudio.core.model.input_spec import InputSpec
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.model_input import (digits_fit, prepare_model_input, size_for_layout, spec_fields,
                                                    use_model_input)
from squeezestudio.core.session.studio_session import StudioSession


@pytest.fixture
def session(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "lenet.safetensors"
    save_safetensors(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32), path)
    s = StudioSession(registry=default_registry())
    s.open_model(path)
    return s


def test_a_new_input_is_checked_on_a_new_handle_and_the_session_is_unchanged(session):
    old = session.handle.input_spec
    new = prepare_model_input(session, {"input_size": "32,32", "resize": "36", "mean": "0.5", "std": "0.25",
                                        "pixel_scale": "255", "bgr": False, "grayscale": True})
    assert new is not session.handle and new.module is session.handle.module
    assert (new.input_spec.resize, new.input_spec.mean, new.input_spec.std) == ((36,), (0.5,), (0.25,))
    assert new.input_spec.pixel_scale == 255.0 and new.input_spec.grayscale
    assert session.handle.input_spec == old
    cover = prepare_model_input(session, {**spec_fields(new.input_spec), "resize": ""})
    assert cover.input_spec.resize == () and cover.input_spec.mean == (0.5,)


@pytest.mark.parametrize("raw, sentence", [
    ({"input_size": "32,32", "resize": "20"}, "larger than the resize"),
    ({"input_size": "32,32", "resize": "40,30"}, "larger than the resize to 40x30"),
    ({"mean": "0.5,0.5,0.5"}, "the mean has 3 values but the model takes 1 channel(s)"),
    ({"mean": "a lot"}, "mean must be numbers"),
    ({"std": "0"}, "every std value must be positive"),
    ({"input_size": "zero"}, "input_size must be whole numbers"),
])
def test_an_input_that_contradicts_the_model_is_one_sentence(session, raw, sentence):
    with pytest.raises(PreprocessingError) as info:
        prepare_model_input(session, raw, probe=False)
    message = str(info.value)
    assert sentence in message and "\n" not in message


def test_a_size_the_model_cannot_take_is_found_by_the_probe(session):
    raw = {"input_size": "40,40"}
    assert prepare_model_input(session, raw, probe=False).input_spec.height == 40  # the fields are consistent
    with pytest.raises(PreprocessingError):
        prepare_model_input(session, raw)  # but LeNet's first linear layer takes 32x32 inputs only


def test_an_onnx_files_declared_size_cannot_change(session, tmp_path):
    onnx_path = tmp_path / "lenet.onnx"
    export_onnx(session.handle, onnx_path)
    session.open_model(onnx_path)
    with pytest.raises(PreprocessingError, match="declares 32x32"):
        prepare_model_input(session, {"input_size": "28,28"}, probe=False)
    assert prepare_model_input(session, {"mean": "0.1"}).input_spec.mean == (0.1,)


def test_using_the_new_input_drops_points_and_data_but_keeps_the_recipe(session):
    before = session.open_data("digits")
    session.set_recipe({"version": 1, "methods": {"prune": {"sparsity": 0.5}}, "layers": {}})
    session.add_experiment(session.evaluate_recipe(None, original=True))
    assert len(session.experiments) == 1
    models = []
    session.events.model.connect(lambda: models.append(session.handle))
    spec = session.handle.input_spec
    new = prepare_model_input(session, {"mean": "0.4"})
    use_model_input(session, new)
    assert session.handle is new and models == [new]
    assert len(session.experiments) == 0 and session.data is None and session.data_source == "digits"
    assert session.recipe == {"version": 1, "methods": {"prune": {"sparsity": 0.5}}, "layers": {}}
    after = session.open_data("digits")  # loaded again, now prepared with the new mean
    std = spec.std[0]
    assert torch.allclose(after.images * std + 0.4, before.images * std + spec.mean[0], atol=1e-5)
    assert not torch.allclose(after.images, before.images)


def test_only_an_onnx_file_at_hand_declares_a_size_per_layout(session, tmp_path):
    assert size_for_layout(session.handle, "nhwc") is None  # a PyTorch model: its layout is its own code
    path = tmp_path / "open.onnx"
    export_onnx(session.handle, path)
    dynamic = StudioSession(registry=default_registry())
    dynamic.open_model(path)
    assert size_for_layout(dynamic.handle, "nchw") == (32, 32)
    import onnx

    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"  # the file leaves the size open: the user sets it, whatever the layout
    onnx.save(model, str(path))
    assert size_for_layout(dynamic.handle, "nchw") is None and size_for_layout(dynamic.handle, "nhwc") is None


def test_the_digits_fit_ten_class_near_square_inputs():
    assert digits_fit(InputSpec(channels=1, height=32, width=32), 10)
    assert digits_fit(InputSpec(channels=3, height=224, width=224), 10)
    assert not digits_fit(InputSpec(channels=3, height=224, width=224), 1000)
    assert not digits_fit(InputSpec(channels=3, height=48, width=192), 10)
    assert not digits_fit(InputSpec(channels=1, height=4, width=4), 10)
    assert not digits_fit(InputSpec(channels=2, height=32, width=32, mean=(0.5, 0.5), std=(0.5, 0.5)), 10)


class _ChannelsLast(torch.nn.Module):
    """A TensorFlow-style net taking [N, H, W, 3]; at 3x8 pixels its shape [N, 3, 8, 3] reads as NCHW too."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 3 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.conv(x.permute(0, 3, 1, 2))), 1))


def test_another_layout_of_an_onnx_file_converts_it_again(tmp_path):
    import io
    import warnings

    import onnxruntime

    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_ChannelsLast().eval(), (torch.randn(1, 3, 8, 3),), buffer, dynamo=False,
                          input_names=["image"], output_names=["scores"])
    path = tmp_path / "channels_last.onnx"
    path.write_bytes(buffer.getvalue())
    session = StudioSession(registry=default_registry())
    session.open_model(path)
    assert session.handle.input_spec.layout == "nchw"  # [N, 3, 8, 3]: read as 3 channels of 8x3
    assert size_for_layout(session.handle, "nchw") == (8, 3) and size_for_layout(session.handle, "nhwc") == (3, 8)
    fields = {**spec_fields(session.handle.input_spec), "layout": "nhwc", "input_size": "3,8", "resize": ""}
    assert prepare_model_input(session, fields, probe=False).module is session.handle.module  # checked only
    new = prepare_model_input(session, fields)
    assert new.module is not session.handle.module and new.input_spec.layout == "nhwc"
    assert new.input_spec.file_shape() == (1, 3, 8, 3)
    x = torch.randn(1, 3, 3, 8)  # NCHW, as every module SqueezeStudio runs takes
    ort = onnxruntime.InferenceSession(str(path)).run(None, {"image": x.permute(0, 2, 3, 1).numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(new.module(x), torch.from_numpy(ort), atol=1e-5)
