"""classify_files: per-model top-k for image files, agreement, and per-file errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from squeezestudio.core.measure.classify import classify_files
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.errors import DataError
from squeezestudio.core.progress import CancelToken, Cancelled

SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
NAMES = [f"digit {i}" for i in range(10)]


def _digit_pngs(folder, count=3):
    """Write ``count`` 8x8 digits as PNGs; return their paths and pixel arrays in 0..255."""
    digits = load_digits()
    paths, arrays = [], []
    for i in range(count):
        pixels = np.clip(np.rint(digits.images[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        path = folder / f"digit_{i}.png"
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(path)
        arrays.append(pixels)
    return paths, arrays


def _linear_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def _shifted(model: nn.Module) -> nn.Module:
    """Same scores with the classes rotated by one: its top-1 always differs from ``model``'s."""
    out = _linear_model(99)
    with torch.no_grad():
        out[1].weight.copy_(torch.roll(model[1].weight, 1, dims=0))
        out[1].bias.copy_(torch.roll(model[1].bias, 1, dims=0))
    return out


def _expected_topk(model: nn.Module, pixels: np.ndarray, k: int):
    x = torch.from_numpy((pixels.astype(np.float32) / 255.0 - 0.5) / 0.5).reshape(1, 1, 8, 8)
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)[0]
    values, idx = probs.topk(k)
    return idx.tolist(), values.tolist()


def test_top_k_matches_the_models_and_agreement_is_reported(tmp_path):
    torch.manual_seed(0)
    paths, arrays = _digit_pngs(tmp_path)
    original = _linear_model(1)
    compressed = _shifted(original)
    results = classify_files(paths, {"original": original, "compressed": compressed}, SPEC, NAMES, k=5)
    assert [r.path for r in results] == [str(p) for p in paths]
    for result, pixels in zip(results, arrays):
        assert result.ok and result.error is None
        for name, model in (("original", original), ("compressed", compressed)):
            idx, probs = _expected_topk(model, pixels, 5)
            preds = result.top[name]
            assert [p.class_index for p in preds] == idx
            assert [p.class_name for p in preds] == [NAMES[i] for i in idx]
            assert [p.probability for p in preds] == pytest.approx(probs, abs=1e-5)
        assert result.agree is False
    same = classify_files(paths, {"a": original, "b": original}, SPEC, NAMES)
    assert all(r.agree is True for r in same)
    single = classify_files(paths, {"only": original}, SPEC, NAMES, k=3)
    assert all(r.agree is None and len(r.top["only"]) == 3 for r in single)


def test_a_bad_file_gets_an_error_and_the_others_are_still_classified(tmp_path):
    torch.manual_seed(0)
    paths, _ = _digit_pngs(tmp_path, count=2)
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    missing = tmp_path / "gone.jpg"
    results = classify_files([paths[0], bad, missing, paths[1]], {"m": _linear_model(2)}, SPEC, NAMES)
    assert [r.ok for r in results] == [True, False, False, True]
    assert "notes.png" in results[1].error and results[1].top == {}
    assert "gone.jpg" in results[2].error
    assert len(results[3].top["m"]) == 5


def test_models_are_left_in_their_training_mode(tmp_path):
    torch.manual_seed(0)
    paths, _ = _digit_pngs(tmp_path, count=1)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(64, 10)).train()
    first = classify_files(paths, {"m": model}, SPEC, NAMES)
    second = classify_files(paths, {"m": model}, SPEC, NAMES)
    assert model.training
    assert first[0].top["m"] == second[0].top["m"]  # dropout was off while classifying


def test_wrong_class_count_and_no_models_are_user_errors(tmp_path):
    torch.manual_seed(0)
    paths, _ = _digit_pngs(tmp_path, count=1)
    with pytest.raises(DataError, match="3 class names"):
        classify_files(paths, {"m": _linear_model(3)}, SPEC, ["a", "b", "c"])
    with pytest.raises(DataError, match="no model"):
        classify_files(paths, {}, SPEC, NAMES)


def test_cancel_stops_classification(tmp_path):
    torch.manual_seed(0)
    paths, _ = _digit_pngs(tmp_path, count=2)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        classify_files(paths, {"m": _linear_model(4)}, SPEC, NAMES, cancel=token)
