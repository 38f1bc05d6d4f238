"""The built-in digits: a fixed, stratified, seeded split and correct pixel scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import digits_as_images, load_digits_split, split_indices
from squeezestudio.core.errors import DataError

RAW_SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.0,), std=(1.0,))


@pytest.fixture(scope="module")
def raw():
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def test_split_is_deterministic_disjoint_covering_and_stratified(raw):
    _, labels = raw
    train = split_indices(labels, "train", seed=3, val_fraction=0.2)
    val = split_indices(labels, "val", seed=3, val_fraction=0.2)
    assert np.array_equal(val, split_indices(labels, "val", seed=3, val_fraction=0.2))
    assert not np.array_equal(val, split_indices(labels, "val", seed=4, val_fraction=0.2))
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    for cls in range(10):
        n_cls = int((labels == cls).sum())
        assert int((labels[val] == cls).sum()) == round(n_cls * 0.2)


def test_datasets_match_the_raw_pixels_and_labels(raw):
    images, labels = raw
    val = load_digits_split("val", RAW_SPEC, seed=1)
    idx = split_indices(labels, "val", seed=1, val_fraction=0.2)
    assert val.class_names == [str(i) for i in range(10)]
    assert torch.equal(val.labels, torch.from_numpy(labels[idx]))
    assert torch.allclose(val.images[:, 0], torch.from_numpy(images[idx] / 16.0))
    train = load_digits_split("train", RAW_SPEC, seed=1)
    assert len(train) + len(val) == len(labels) == len(load_digits_split("all", RAW_SPEC))
    again = load_digits_split("val", RAW_SPEC, seed=1)
    assert torch.equal(again.images, val.images)


def test_default_spec_is_normalised_32x32_gray():
    data = load_digits_split("val")
    assert data.images.shape[1:] == (1, 32, 32) and data.images.dtype == torch.float32
    assert float(data.images.min()) == pytest.approx(-1.0) and float(data.images.max()) == pytest.approx(1.0)


def test_three_channel_spec_repeats_and_normalises_per_channel():
    spec = PreprocessSpec(channels=3, height=16, width=16, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 2.0))
    data = load_digits_split("val", spec)
    gray = load_digits_split("val", PreprocessSpec(channels=1, height=16, width=16, mean=(0.0,), std=(1.0,)))
    assert data.images.shape[1:] == (3, 16, 16)
    assert torch.allclose(data.images[:, 0], gray.images[:, 0])
    assert torch.allclose(data.images[:, 1], (gray.images[:, 0] - 0.5) / 0.5)
    assert torch.allclose(data.images[:, 2], (gray.images[:, 0] - 1.0) / 2.0)


def test_bad_split_arguments():
    with pytest.raises(DataError, match="split"):
        load_digits_split("test")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="fraction"):
        load_digits_split("val", val_fraction=1.5)


def test_digits_as_images_cover_every_class():
    samples = digits_as_images(12, size=24)
    assert [name for name, _ in samples] == [str(i % 10) for i in range(12)]
    for _, img in samples:
        assert img.mode == "L" and img.size == (24, 24)
        arr = np.asarray(img)
        assert arr.dtype == np.uint8 and arr.max() > 150 and arr.min() < 30


def test_reading_the_bundled_csv_equals_scikit_learns_loader_without_importing_it():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from squeezestudio.core.data.digits import _bundled_digits_file, _raw_digits

    assert _bundled_digits_file() is not None
    images, labels = _raw_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.images.astype(np.float32))
    assert np.array_equal(labels, reference.target)
    code = ("import sys; from squeezestudio.core.data.digits import _raw_digits; _raw_digits(); "
            "print('sklearn.datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
