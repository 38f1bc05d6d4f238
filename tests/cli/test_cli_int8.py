"""``compress --onnx-int8`` and ``export --to onnx-int8`` on the bundled LeNet-300-100 and digits."""

from __future__ import annotations

import re

import onnxruntime as ort

from squeezestudio.cli.main import main
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.export_onnx_int8 import int8_kernel_ops

LENET = str(demo_model_path("lenet300_100"))


def test_compress_and_export_write_an_int8_onnx_within_a_point_of_the_sqz(capsys, tmp_path):
    sqz, first, second = tmp_path / "m.sqz", tmp_path / "a.int8.onnx", tmp_path / "m.int8.onnx"
    assert main(["compress", LENET, "--quant-bits", "6", "-o", str(sqz), "--onnx-int8", str(first)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {first} ({first.stat().st_size:,d} bytes" in out
    assert "3 layer(s) with the model's own 8-bit values" in out
    assert main(["export", str(sqz), "--to", "onnx-int8", "--data", "digits",
                 "--calibration-method", "percentile"]) == 0
    out = capsys.readouterr().out
    ratio = float(re.search(r"float ONNX [\d,]+ bytes, ([\d.]+)x", out).group(1))
    assert ratio <= 0.3
    sqz_top1, int8_top1 = (float(v) for v in re.search(r"\.sqz ([\d.]+)%, int8 ONNX in onnxruntime ([\d.]+)%",
                                                       out).groups())
    assert sqz_top1 > 90 and abs(int8_top1 - sqz_top1) <= 1.0
    assert int8_kernel_ops(second.read_bytes()).get("QGemm", 0) + \
        int8_kernel_ops(second.read_bytes()).get("QLinearMatMul", 0) == 3
    ort.InferenceSession(str(second), providers=["CPUExecutionProvider"])


def test_int8_export_of_a_missing_calibration_folder_is_one_error_line(capsys, tmp_path):
    sqz = tmp_path / "m.sqz"
    assert main(["compress", LENET, "-o", str(sqz)]) == 0
    capsys.readouterr()
    assert main(["export", str(sqz), "--to", "onnx-int8", "--calibration", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
