"""The files written for a channels-last model ending in Softmax keep its interface, and are measured on it.

A Keras classifier converted to ONNX takes ``[N, H, W, 3]`` and returns
probabilities. Its exports keep both (a deployment swaps the file in place),
so everything that runs those files — the int8 calibration, the int8 file's
own accuracy, latency — must feed channels-last images and read
probabilities. Before, all three fed channels-first images and onnxruntime
refused them ("Got: 3 Expected: 40"), and the int8 file's loss was that of a
second softmax.
"""

from __future__ import annotations

import pytest

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset, match_classes
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.measure.latency import deployable_latency
from squeezestudio.core.measure.onnx_evaluation import evaluate_onnx, file_interface


@pytest.fixture()
def opened(nhwc_softmax_set):
    handle = load_model(nhwc_softmax_set.model, preprocess={"resize": 40, "mean": 0.5, "std": 0.5},
                        registry=default_registry())
    data = match_classes(load_dataset(str(nhwc_softmax_set.folder), PreprocessSpec.from_input_spec(handle.input_spec)),
                         handle.class_names)
    return handle, data


def test_plain_preprocessing_values_are_accepted_from_python(opened):
    handle, _ = opened
    assert handle.input_spec.resize == (40,) and handle.input_spec.mean == (0.5, 0.5, 0.5)
    assert handle.input_spec.layout == "nhwc" and handle.final_activation == "softmax"
    assert file_interface(handle) == {"nhwc": True, "output_kind": "probabilities"}


def test_the_float_file_is_measured_on_its_own_layout_with_the_model_s_numbers(opened, tmp_path):
    handle, data = opened
    path = tmp_path / "float.onnx"
    export_onnx(handle, path)
    own, file = evaluate(handle.module, data), evaluate_onnx(path, data, handle=handle, reference=handle.module)
    assert file.top1 == own.top1 and file.agreement == 1.0
    # The loss of the file's probabilities, not of a softmax of them (which would be near log(3) = 1.10).
    assert file.loss == pytest.approx(own.loss, abs=1e-4)


def test_int8_export_calibrates_and_runs_channels_last(opened, tmp_path):
    handle, data = opened
    path = tmp_path / "int8.onnx"
    result = export_onnx_int8(handle, path, data.images[:16])
    assert path.stat().st_size == result.size_bytes and result.quantized_layers
    int8 = evaluate_onnx(path, data, handle=handle, reference=handle.module)
    assert int8.n == len(data) and int8.agreement >= 0.75
    assert int8.loss == pytest.approx(evaluate(handle.module, data).loss, abs=0.1)


def test_latency_times_the_files_on_channels_last_inputs(opened):
    handle, data = opened
    timed = deployable_latency(handle, targets=("onnx", "onnx-int8"), calibration=data.images[:8], batch=2,
                               threads=1, repeats=2)
    assert set(timed) == {"onnx", "onnx-int8"}
    assert all(t.batch1_ms > 0 and t.size_bytes > 0 for t in timed.values())
