"""A new user's third-party ONNX classifiers through the real command line, checked against onnxruntime.

The fixtures (tests/third_party_fixtures.py) label each image folder with
onnxruntime's own top-1 under the model's true preprocessing, so ``eval``
with the right flags must score ~100% and the wrong preprocessing visibly less.
"""

from __future__ import annotations

import json
import re

import numpy as np

from squeezestudio.cli.main import main
from third_party_fixtures import linked_folder


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _top1(out: str) -> float:
    return json.loads(out[out.index("{"):])["top1"]


def test_eval_with_the_right_flags_matches_onnxruntime(capsys, text_direction_set):
    s = text_direction_set
    assert len(set(s.labels.tolist())) >= 2  # the labels discriminate, so a wrong preprocessing shows
    code, out, err = run_cli(capsys, "eval", str(s.model), "--data", str(s.folder), "--resize", "48,192",
                             "--mean", "0.5", "--std", "0.5", "--json")
    assert code == 0, err
    assert _top1(out) >= 0.99  # onnxruntime's accuracy on these labels is 100% by construction
    assert "does not say how its images are preprocessed" not in out  # the flags answered the warning
    code, out, _ = run_cli(capsys, "eval", str(s.model), "--data", str(s.folder), "--json")
    assert code == 0
    assert "--mean/--std" in out  # without flags the user is told which flags exist
    assert _top1(out) < 0.99


def test_preprocess_file_is_the_same_as_the_flags(capsys, tmp_path, text_direction_set):
    s = text_direction_set
    spec = tmp_path / "prep.yaml"
    spec.write_text("resize: [48, 192]\nmean: 0.5\nstd: [0.5, 0.5, 0.5]\n")
    code, out, err = run_cli(capsys, "eval", str(s.model), "--data", str(s.folder), "--preprocess", str(spec),
                             "--json")
    assert code == 0, err
    assert _top1(out) >= 0.99


def test_classify_confidences_of_a_softmax_model_match_onnxruntime(capsys, softmax_set):
    s = softmax_set
    files = [str(p) for p in s.paths[:6]]
    code, out, err = run_cli(capsys, "classify", str(s.model), *files, "--resize", "32,32", "-k", "1",
                             "--labels", str(_labels_file(s, capsys)))
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith(tuple(files))]
    assert len(lines) == 6
    for i, line in enumerate(lines):
        name, pct = re.search(r": (\S+) ([0-9.]+)%$", line).groups()
        assert name == f"n{int(s.labels[i])}"
        assert abs(float(pct) / 100 - float(s.probabilities[i].max())) <= 1e-3 + 5e-4  # printed to 0.1%


def _labels_file(s, capsys):
    path = s.model.parent / "labels.txt"
    path.write_text("\n".join(f"n{i}" for i in range(s.probabilities.shape[1])) + "\n")
    return path


def test_classify_confidences_to_1e3(softmax_set):
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.io.loading import load_model
    from squeezestudio.core.measure.classify import classify_files

    s = softmax_set
    handle = load_model(s.model, preprocess={"resize": (32, 32)}, registry=default_registry())
    assert handle.final_activation == "softmax"
    results = classify_files(s.paths, {"m": handle.module}, PreprocessSpec.from_input_spec(handle.input_spec),
                             handle.class_names, k=5)
    ours = np.array([[p.probability for p in sorted(r.top["m"], key=lambda p: p.class_index)] for r in results])
    assert np.max(np.abs(ours - s.probabilities)) <= 1e-3


def test_nhwc_model_loads_as_three_channels_and_matches_onnxruntime(capsys, nhwc_set):
    s = nhwc_set
    code, out, err = run_cli(capsys, "inspect", str(s.model))
    assert code == 0, err
    assert "3x40x40" in out
    code, out, err = run_cli(capsys, "eval", str(s.model), "--data", str(s.folder), "--resize", "40,40",
                             "--mean", "0.5", "--std", "0.5", "--json")
    assert code == 0, err
    assert _top1(out) >= 0.99


def test_a_folder_of_symbolic_links_says_how_to_use_it(capsys, tmp_path, nhwc_set):
    """An ImageNet subset is often a folder of links into the full set: refused by default, in one sentence."""
    s = nhwc_set
    linked_folder(s, tmp_path / "links")
    flags = ["--resize", "40,40", "--mean", "0.5", "--std", "0.5", "--json"]
    code, out, err = run_cli(capsys, "eval", str(s.model), "--data", str(tmp_path / "links"), *flags)
    assert code == 2 and "symbolic links" in err and "--follow-links" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "eval", str(s.model), "--data", str(tmp_path / "links"), "--follow-links",
                             *flags)
    assert code == 0, err
    assert _top1(out) >= 0.99
