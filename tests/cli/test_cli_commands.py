"""The commands end to end on real files: what they print agrees with what they write."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from squeezestudio.cli.main import main
from squeezestudio.core.io.demo_files import demo_model_path, sample_images
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.loading import load_model, save_state_dict
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

DEMO = str(demo_model_path())


def run_cli(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _total_params(table: str) -> int:
    line = next(l for l in table.splitlines() if l.startswith("TOTAL"))
    return int(line.split()[1].replace(",", ""))


def _top1(text: str) -> float:
    return float(re.search(r"top-1\s+([\d.]+)%", text).group(1))


@pytest.fixture(scope="module")
def trained_lenet(tmp_path_factory) -> tuple[Path, Path]:
    """A LeNet-5 state_dict with non-zero biases and its ONNX export."""
    import torch

    folder = tmp_path_factory.mktemp("lenet")
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=28)
    with torch.no_grad():
        for m in handle.module.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.uniform_(-0.1, 0.1)  # the ONNX exporter drops all-zero biases
    pt, onnx_path = folder / "lenet5.pt", folder / "lenet5.onnx"
    save_state_dict(handle, pt)
    export_onnx(handle, onnx_path)
    return pt, onnx_path


def test_demo_prints_the_layer_table_and_measured_accuracy(capsys):
    out = run_cli(capsys, "demo")
    assert "features.0" in out and "TOTAL" in out
    assert _top1(out) >= 95.0


def test_onnx_and_state_dict_agree_on_parameters_and_accuracy(capsys, trained_lenet):
    pt, onnx_path = trained_lenet
    assert _total_params(run_cli(capsys, "inspect", str(pt))) == _total_params(run_cli(capsys, "inspect", str(onnx_path)))
    assert _top1(run_cli(capsys, "eval", str(pt))) == _top1(run_cli(capsys, "eval", str(onnx_path)))


def test_compress_then_eval_reports_the_same_accuracy_and_the_file_size(capsys, tmp_path):
    out_file = tmp_path / "demo.sqz"
    out = run_cli(capsys, "compress", DEMO, "--prune", "0.3", "--cluster-bits", "5", "-o", str(out_file),
                  "--save-recipe", str(tmp_path / "r.yaml"), "--report", str(tmp_path / "r.json"))
    reported_size = int(re.search(r"file size (\d+) bytes", out).group(1))
    assert out_file.stat().st_size == reported_size
    after = float(re.search(r"([\d.]+)% after", out).group(1))
    assert _top1(run_cli(capsys, "eval", str(out_file))) == after
    # The recipe reproduces the same file size.
    again = tmp_path / "again.sqz"
    run_cli(capsys, "compress", DEMO, "--recipe", str(tmp_path / "r.yaml"), "-o", str(again), "--data", "none")
    assert again.stat().st_size == pytest.approx(reported_size, rel=0.01)


def test_export_decodes_a_sqz_to_a_dense_checkpoint(capsys, tmp_path):
    sqz = tmp_path / "m.sqz"
    run_cli(capsys, "compress", DEMO, "--cluster-bits", "4", "-o", str(sqz), "--data", "none")
    dense = tmp_path / "m.pt"
    out = run_cli(capsys, "export", str(sqz), "--to", "pt", "-o", str(dense))
    assert f"({dense.stat().st_size:,d} bytes)" in out
    import torch

    a, b = load_model(sqz, registry=default_registry()).module.state_dict(), load_model(dense, registry=default_registry()).module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sweep_writes_csv_and_png_with_a_pareto_frontier(capsys, tmp_path):
    csv_path = tmp_path / "sweep.csv"
    run_cli(capsys, "sweep", DEMO, "--grid", "cluster.bits=none,3,6", "-o", str(csv_path))
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["label"] for r in rows][0] == "original" and len(rows) == 4
    assert any(r["pareto"] == "True" for r in rows)
    png = csv_path.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_over_activation_bits_calibrates_on_training_images(capsys, tmp_path):
    csv_path = tmp_path / "acts.csv"
    run_cli(capsys, "sweep", str(demo_model_path("lenet300_100")), "--grid", "activations.bits=none,8,2",
            "-o", str(csv_path))
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["label"] for r in rows] == ["original", "activations off", "activations.bits=8", "activations.bits=2"]
    top1 = {r["label"]: float(r["top1"]) for r in rows}
    assert abs(top1["activations.bits=8"] - top1["original"]) <= 0.01  # 8-bit activations keep accuracy
    assert top1["activations.bits=2"] < top1["activations.bits=8"]  # 2 bits really quantize
    sizes = {r["label"]: int(r["size_bytes"]) for r in rows}
    assert sizes["activations.bits=8"] > sizes["activations off"]  # the ranges are stored in the file


def test_sensitivity_writes_curves(capsys, tmp_path):
    out_csv = tmp_path / "s.csv"
    run_cli(capsys, "sensitivity", DEMO, "--layers", "features.0,classifier.1", "--sparsities", "0.5,0.9",
            "--bits", "4,2", "-o", str(out_csv))
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == 2 * 2 * 2
    assert {r["layer"] for r in rows} == {"features.0", "classifier.1"}
    assert (tmp_path / "s-prune.png").is_file() and (tmp_path / "s-quantize.png").is_file()


def test_classify_prints_the_class_of_each_sample(capsys):
    samples = sample_images()[:3]
    out = run_cli(capsys, "classify", DEMO, *map(str, samples), "-k", "3")
    for path in samples:
        line = next(l for l in out.splitlines() if l.startswith(str(path)))
        digit = path.stem.split("_")[-1]
        assert line.split(": ", 1)[1].startswith(f"{digit} ")


def test_plugins_lists_the_folder_plugins_with_versions(capsys):
    out = run_cli(capsys, "plugins")
    for name in ("prune", "cluster", "quantize", "fire", "lowrank", "freshnets", "structured"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert "plugins/lowrank 0.1.0" in out
