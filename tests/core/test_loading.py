"""Loading weights-only checkpoints: metadata round trips, wrappers, architecture inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from squeezestudio.core.errors import ArchitectureMismatchError, ModelLoadError
from squeezestudio.core.io.loading import load_model, save_safetensors, save_state_dict
from squeezestudio.core.io.loading.infer import infer_zoo_architecture, zoo_shapes
from squeezestudio.core.model.handle import InputSpec
from squeezestudio.core.model.zoo import ZOO_NAMES, resolve_zoo_kwargs, zoo_handle
from squeezestudio.core.compression.registry import default_registry


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def squeeze_handle():
    """A small, non-default SqueezeNet 1.1: 1 channel, 32x32, 4 named classes."""
    torch.manual_seed(0)
    return zoo_handle("squeezenet1_1", in_channels=1, input_size=32,
                      class_names=["cat", "dog", "owl", "yak"], mean=(0.1,), std=(0.3,))


@pytest.mark.parametrize("saver, fmt", [(save_state_dict, "state_dict"),
                                        (save_safetensors, "safetensors")])
def test_saved_files_reopen_without_arch(tmp_path: Path, squeeze_handle, saver, fmt: str) -> None:
    path = tmp_path / "model.bin"
    written = saver(squeeze_handle, path)
    assert written == path.stat().st_size > 0
    loaded = load_model(path, registry=default_registry())
    assert loaded.source_format == fmt and loaded.source_path == path
    assert loaded.architecture == squeeze_handle.architecture
    assert loaded.class_names == ["cat", "dog", "owl", "yak"]
    assert loaded.input_spec == squeeze_handle.input_spec
    assert loaded.name == "squeezenet1_1" and not loaded.trusted_code and loaded.warnings == []
    assert _same_weights(loaded.module, squeeze_handle.module)
    x = torch.randn(2, 1, 32, 32)
    squeeze_handle.module.eval()
    assert torch.equal(loaded.module(x), squeeze_handle.module(x))


def test_bare_state_dict_is_recognised(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = zoo_handle("resnet18", num_classes=10, in_channels=1, input_size=32).module
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    loaded = load_model(tmp_path / "weights.pth", registry=default_registry())
    assert loaded.architecture is not None and loaded.architecture.name == "resnet18"
    assert loaded.architecture.kwargs["num_classes"] == 10
    assert loaded.architecture.kwargs["in_channels"] == 1
    assert loaded.class_names == [f"class {i}" for i in range(10)]
    assert loaded.input_spec.channels == 1 and loaded.name == "weights"
    assert any("input size" in w for w in loaded.warnings)  # 224 is a guess; the user is told
    assert _same_weights(loaded.module, source)


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    lambda sd: {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
])
def test_common_checkpoint_wrappers(tmp_path: Path, squeeze_handle, wrap) -> None:
    torch.save(wrap(squeeze_handle.module.state_dict()), tmp_path / "ckpt.pt")
    loaded = load_model(tmp_path / "ckpt.pt", class_names=["a", "b", "c", "d"], registry=default_registry())
    assert loaded.class_names == ["a", "b", "c", "d"]
    assert _same_weights(loaded.module, squeeze_handle.module)


def test_legacy_torch_format_and_old_batchnorm_counters(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = zoo_handle("cnds8", num_classes=5, in_channels=1, input_size=16).module
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    loaded = load_model(tmp_path / "old.pt", registry=default_registry())
    assert loaded.architecture.name == "cnds8" and loaded.architecture.kwargs["num_classes"] == 5
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(loaded.module(x), source.eval()(x))


def test_plain_safetensors_without_metadata(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = zoo_handle("lenet300_100", num_classes=3, in_channels=3, input_size=16).module
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "m.safetensors"))
    loaded = load_model(tmp_path / "m.safetensors", registry=default_registry())
    assert loaded.architecture.kwargs == {"num_classes": 3, "in_channels": 3, "input_size": 16}
    spec = loaded.input_spec
    assert (spec.channels, spec.height, spec.width) == (3, 16, 16)
    assert loaded.warnings == []  # an MLP's input size is known from its shapes


def test_lenet5_input_size_is_inferred(tmp_path: Path) -> None:
    source = zoo_handle("lenet5", input_size=32).module
    torch.save(source.state_dict(), tmp_path / "lenet.pt")
    loaded = load_model(tmp_path / "lenet.pt", registry=default_registry())
    assert loaded.architecture.kwargs["input_size"] == 32 and loaded.input_spec.height == 32


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_architecture_is_recognised_from_shapes(name: str) -> None:
    kwargs = resolve_zoo_kwargs(name, num_classes=7, in_channels=1,
                                input_size=40 if name.startswith("lenet") else None)
    assert infer_zoo_architecture(zoo_shapes(name, kwargs), "test") == (name, kwargs)


def test_explicit_arch_and_arguments(tmp_path: Path, squeeze_handle) -> None:
    torch.save(squeeze_handle.module.state_dict(), tmp_path / "w.pt")
    loaded = load_model(tmp_path / "w.pt", arch="squeezenet1_1", arch_kwargs={"input_size": 48}, registry=default_registry())
    assert loaded.input_spec.height == 48 and loaded.warnings == []
    with pytest.raises(ArchitectureMismatchError, match="do not fit squeezenet1_0"):
        load_model(tmp_path / "w.pt", arch="squeezenet1_0", registry=default_registry())


def test_input_spec_override(tmp_path: Path, squeeze_handle) -> None:
    save_state_dict(squeeze_handle, tmp_path / "m.pt")
    spec = InputSpec(channels=1, height=40, width=40, mean=(0.0,), std=(1.0,))
    assert load_model(tmp_path / "m.pt", input_spec=spec, registry=default_registry()).input_spec == spec


def test_half_precision_weights_become_float32(tmp_path: Path, squeeze_handle) -> None:
    torch.save({k: v.half() if v.is_floating_point() else v
                for k, v in squeeze_handle.module.state_dict().items()}, tmp_path / "h.pt")
    loaded = load_model(tmp_path / "h.pt", registry=default_registry())
    assert all(p.dtype == torch.float32 for p in loaded.module.parameters())
    assert any("float16" in w for w in loaded.warnings)


def test_nan_and_inf_weights_load_with_a_warning_naming_them(tmp_path: Path, squeeze_handle) -> None:
    state = squeeze_handle.module.state_dict()
    state["features.3.squeeze.weight"][0, 0, 0, 0] = float("nan")
    state["classifier.1.bias"][2] = float("inf")
    save_safetensors(squeeze_handle, tmp_path / "broken.safetensors")
    loaded = load_model(tmp_path / "broken.safetensors", registry=default_registry())
    assert len(loaded.warnings) == 1
    assert "features.3.squeeze.weight" in loaded.warnings[0]
    assert "classifier.1.bias" in loaded.warnings[0] and "NaN or Inf" in loaded.warnings[0]
    assert torch.isnan(loaded.module.state_dict()["features.3.squeeze.weight"]).any()


def test_class_name_count_must_match(tmp_path: Path, squeeze_handle) -> None:
    save_state_dict(squeeze_handle, tmp_path / "m.pt")
    with pytest.raises(ModelLoadError, match="3 class names were given but the model has 4"):
        load_model(tmp_path / "m.pt", class_names=["a", "b", "c"], registry=default_registry())


def test_sqz_and_onnx_are_recognised_by_content_not_extension(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from squeezestudio.core.compression.codec import save_sqz
    from squeezestudio.core.compression.compressed_model import CompressedModel

    handle = zoo_handle("lenet300_100", num_classes=3, input_size=8)
    save_sqz(CompressedModel(handle=handle), tmp_path / "compressed.pt", registry=default_registry())  # misleading name
    sqz = load_model(tmp_path / "compressed.pt", class_names=["x", "y", "z"], registry=default_registry())
    assert sqz.source_format == "sqz" and sqz.class_names == ["x", "y", "z"]
    assert _same_weights(sqz.module, handle.module)

    weight = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "W", "B"], ["y"], transB=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.zeros(3, np.float32), "B")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "net.bin")
    from_onnx = load_model(tmp_path / "net.bin", registry=default_registry())
    assert from_onnx.source_format == "onnx" and from_onnx.num_classes == 3
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(from_onnx.module(x), x.flatten(1) @ torch.from_numpy(weight).T, atol=1e-5)
