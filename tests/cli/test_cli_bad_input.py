"""Bad input through the real command line: one plain sentence on stderr, exit code 2, no traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from squeezestudio.cli.main import main
from squeezestudio.core.io.loading import save_state_dict
from squeezestudio.core.model.zoo import zoo_handle


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle.lower() in err.lower(), (needle, err)


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "lenet5.pt"
    save_state_dict(zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28), path)
    return path


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "nope.pt"))
    assert_clean_error(code, err, "does not exist")


def test_zero_byte_file(capsys, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "inspect", str(empty))
    assert_clean_error(code, err, "empty")


def test_truncated_checkpoint(capsys, tmp_path, lenet_checkpoint):
    cut = tmp_path / "cut.pt"
    data = lenet_checkpoint.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(capsys, "eval", str(cut))
    assert_clean_error(code, err)


class _Payload:
    """Unpickling this would create a marker file: the loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_code_running_pickle_is_refused_and_never_runs(capsys, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    code, _, err = run_cli(capsys, "inspect", str(evil))
    assert_clean_error(code, err, "--trust")
    assert not marker.exists()


def test_wrong_architecture_lists_the_mismatch(capsys, tmp_path, lenet_checkpoint):
    code, _, err = run_cli(capsys, "inspect", str(lenet_checkpoint), "--arch", "lenet300_100")
    assert_clean_error(code, err, "fc1")


def test_nan_weights_warn_but_load(capsys, tmp_path):
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28)
    with torch.no_grad():
        handle.module.conv1.weight[0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    save_state_dict(handle, path)
    code, out, _ = run_cli(capsys, "inspect", str(path))
    assert code == 0
    assert "warning" in out.lower() and "conv1.weight" in out


def test_onnx_with_unsupported_operator_names_it(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 16, 16])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="upsample")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [scales]))
    path = tmp_path / "resize.onnx"
    onnx.save(model, path)
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert_clean_error(code, err, "Resize")


def test_onnx_external_data_outside_its_folder_is_refused(capsys, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel())
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [weight]))
    weight = model.graph.initializer[0]
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "64")):
        weight.external_data.add(key=key, value=value)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    code, _, err = run_cli(capsys, "inspect", str(path))
    assert_clean_error(code, err, "outside")


def test_file_that_is_not_an_image(capsys, tmp_path, lenet_checkpoint):
    fake = tmp_path / "cat.png"
    fake.write_text("not really a picture")
    code, out, _ = run_cli(capsys, "classify", str(lenet_checkpoint), str(fake))
    assert code == 2
    assert "cat.png: error:" in out and "Traceback" not in out


def test_decompression_bomb_is_reported(capsys, tmp_path, lenet_checkpoint, monkeypatch):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    code, out, _ = run_cli(capsys, "classify", str(lenet_checkpoint), str(bomb))
    assert code == 2
    assert "bomb.png: error:" in out


def test_empty_data_folder(capsys, tmp_path, lenet_checkpoint):
    empty = tmp_path / "data"
    empty.mkdir()
    code, _, err = run_cli(capsys, "eval", str(lenet_checkpoint), "--data", str(empty))
    assert_clean_error(code, err)


def test_data_with_a_different_number_of_classes(capsys, tmp_path, lenet_checkpoint):
    root = tmp_path / "three"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        Image.new("L", (28, 28), color=40).save(root / name / "x.png")
    code, _, err = run_cli(capsys, "eval", str(lenet_checkpoint), "--data", str(root))
    assert_clean_error(code, err, "3", "10")


def test_bad_recipe_value(capsys, lenet_checkpoint):
    code, _, err = run_cli(capsys, "compress", str(lenet_checkpoint), "--cluster-bits", "12")
    assert_clean_error(code, err, "bits")


# -- preprocessing, labels and data a third-party model meets (issue 13) -----------------

def test_preprocessing_with_the_wrong_channel_count(capsys, tmp_path, nhwc_set):
    spec = tmp_path / "gray.yaml"
    spec.write_text("channels: 1\n")
    code, _, err = run_cli(capsys, "eval", str(nhwc_set.model), "--data", str(nhwc_set.folder),
                           "--preprocess", str(spec))
    assert_clean_error(code, err, "1-channel", "takes 3 channel")
    code, _, err = run_cli(capsys, "eval", str(nhwc_set.model), "--data", str(nhwc_set.folder),
                           "--mean", "0.5,0.5")
    assert_clean_error(code, err, "mean has 2 values")


def test_crop_larger_than_resize(capsys, nhwc_set):
    code, _, err = run_cli(capsys, "classify", str(nhwc_set.model), str(nhwc_set.paths[0]),
                           "--resize", "30", "--crop", "40")
    assert_clean_error(code, err, "larger than the resize")


def test_input_size_an_onnx_file_does_not_declare(capsys, nhwc_set):
    code, _, err = run_cli(capsys, "classify", str(nhwc_set.model), str(nhwc_set.paths[0]), "--input-size", "64")
    assert_clean_error(code, err, "declares 40x40")


def test_labels_file_with_the_wrong_number_of_names(capsys, tmp_path, softmax_set):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    code, _, err = run_cli(capsys, "classify", str(softmax_set.model), str(softmax_set.paths[0]),
                           "--labels", str(labels))
    assert_clean_error(code, err, "2 class names", "5 outputs")


def test_folder_of_mixed_sizes_and_modes_is_read(capsys, softmax_set):
    # PNG/JPEG, RGB/L/RGBA/P, every image its own size: nothing skipped, nothing refused.
    code, out, err = run_cli(capsys, "eval", str(softmax_set.model), "--data", str(softmax_set.folder),
                             "--resize", "32,32")
    assert code == 0, err
    assert "skipped" not in out
    assert f"examples     {len(softmax_set.paths)}" in out


def test_unlabelled_folder_for_retraining(capsys, lenet_checkpoint, softmax_set):
    loose = str(softmax_set.paths[0].parent)  # images without class sub-folders
    code, _, err = run_cli(capsys, "compress", str(lenet_checkpoint), "--prune", "0.5", "--finetune", "1",
                           "--data", loose, "--train-data", loose)
    assert_clean_error(code, err, "retraining needs labelled data")


def test_nhwc_model_with_a_wrong_declared_shape(capsys, tmp_path, nhwc_set):
    model = onnx.load(str(nhwc_set.model))
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 1  # says 1 channel; the graph needs 3
    bad = tmp_path / "bad_nhwc.onnx"
    onnx.save(model, str(bad))
    code, _, err = run_cli(capsys, "inspect", str(bad))
    assert_clean_error(code, err, "40x40x1 (NHWC)", "declared input shape")


def test_layout_flag_on_a_pytorch_checkpoint(capsys, lenet_checkpoint):
    code, _, err = run_cli(capsys, "inspect", str(lenet_checkpoint), "--layout", "nhwc")
    assert_clean_error(code, err, "applies to ONNX files")
