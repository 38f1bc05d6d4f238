"""Image folders, CSV lists, dispatch, caching through load_dataset, and class matching."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from squeezestudio.core.data.cache import DatasetCache
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.folders import load_csv_list, load_dataset, load_image_folder, match_classes
from squeezestudio.core.errors import DataError
from squeezestudio.core.progress import Cancelled, CancelToken

SPEC = PreprocessSpec(channels=1, height=4, width=4, mean=(0.0,), std=(1.0,))


def _png(path, value, size=(6, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """root/cat: two images (values 10, 20); root/dog: one image (200) + a text file named .png."""
    root = tmp_path / "pets"
    _png(root / "cat" / "a.png", 10)
    _png(root / "cat" / "sub" / "b.png", 20)
    _png(root / "dog" / "c.png", 200)
    (root / "dog" / "broken.png").write_text("not an image")
    (root / "dog" / "readme.txt").write_text("ignored: not an image file name")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png", 99)
    return root


def test_image_folder_labels_values_and_skipped(folder):
    data = load_image_folder(folder, SPEC)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 1]
    assert data.images.shape == (3, 1, 4, 4)
    assert torch.allclose(data.images[:, 0, 0, 0], torch.tensor([10, 20, 200]) / 255.0)
    assert [os.path.basename(p) for p in data.paths] == ["a.png", "b.png", "c.png"]
    assert len(data.skipped) == 1
    assert data.skipped[0].path.endswith("broken.png") and "not an image" in data.skipped[0].reason


def test_image_folder_follows_given_class_order(folder):
    data = load_image_folder(folder, SPEC, class_names=["dog", "cat", "bird"])
    assert data.class_names == ["dog", "cat", "bird"]
    assert data.labels.tolist() == [1, 1, 0]
    with pytest.raises(DataError, match="cat"):
        load_image_folder(folder, SPEC, class_names=["dog"])


def test_flat_folder_is_unlabelled(tmp_path):
    _png(tmp_path / "one.png", 1)
    _png(tmp_path / "two.png", 2)
    data = load_image_folder(tmp_path, SPEC)
    assert data.labels is None and len(data) == 2


def test_empty_and_all_broken_folders_raise(tmp_path):
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(empty, SPEC)
    broken = tmp_path / "broken"
    (broken / "cls").mkdir(parents=True)
    (broken / "cls" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 files"):
        load_image_folder(broken, SPEC)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere", SPEC)


def test_decompression_bomb_in_folder_is_skipped(tmp_path, monkeypatch):
    _png(tmp_path / "c" / "small.png", 5, size=(8, 8))
    _png(tmp_path / "c" / "huge.png", 5, size=(30, 30))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = load_image_folder(tmp_path, SPEC)
    assert len(data) == 1
    assert data.skipped[0].path.endswith("huge.png") and "decompression bomb" in data.skipped[0].reason


def test_progress_increases_to_one_and_cancel_stops(folder):
    calls = []
    load_image_folder(folder, SPEC, progress=lambda f, m="": calls.append(f))
    assert calls[-1] == 1.0 and calls == sorted(calls) and len(calls) >= 2
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        load_image_folder(folder, SPEC, cancel=token)


def test_csv_list_with_header_names_and_missing_file(folder, tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label\npets/dog/c.png,dog\npets/cat/a.png,cat\n\npets/cat/gone.png,cat\n")
    data = load_csv_list(csv_path, SPEC)
    assert data.class_names == ["cat", "dog"]
    assert data.labels.tolist() == [1, 0]
    assert torch.allclose(data.images[:, 0, 0, 0], torch.tensor([200, 10]) / 255.0)
    assert [s.reason for s in data.skipped] == ["file not found"]


def test_csv_list_index_labels_and_class_names(folder, tmp_path):
    csv_path = tmp_path / "idx.csv"
    csv_path.write_text(f"{folder / 'cat' / 'a.png'},2\npets/dog/c.png,0\n")  # absolute and relative paths
    data = load_csv_list(csv_path, SPEC)
    assert data.class_names == ["0", "1", "2"] and data.labels.tolist() == [2, 0]
    named = load_csv_list(csv_path, SPEC, class_names=["x", "y", "z"])
    assert named.labels.tolist() == [2, 0]
    with pytest.raises(DataError, match="line 1"):
        load_csv_list(csv_path, SPEC, class_names=["x", "y"])
    names_and_numbers = tmp_path / "names.csv"
    names_and_numbers.write_text("pets/dog/c.png,b\npets/cat/a.png,10\npets/cat/sub/b.png,a\n")
    data = load_csv_list(names_and_numbers, SPEC)
    assert data.class_names == ["10", "a", "b"] and data.labels.tolist() == [2, 0, 1]
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("pets/dog/c.png,0\npets/cat/a.png\n")
    with pytest.raises(DataError, match="every row needs a label"):
        load_csv_list(mixed, SPEC)


def test_load_dataset_dispatch_and_cache(folder, tmp_path):
    cache = DatasetCache()
    assert len(load_dataset("digits:train", SPEC, cache=cache)) == 1438
    assert len(load_dataset("digits", SPEC, split="val", cache=cache)) == 359
    first = load_dataset(str(folder), SPEC, cache=cache)
    hits = cache.hits
    second = load_dataset(str(folder), SPEC, cache=cache)
    assert cache.hits == hits + 1 and torch.equal(first.images, second.images)
    second.class_names.append("mutated")  # a cached copy must not leak edits
    assert load_dataset(str(folder), SPEC, cache=cache).class_names == ["cat", "dog"]
    _png(folder / "cat" / "a.png", 99, size=(7, 7))  # edited file -> new key, re-decoded
    changed = load_dataset(str(folder), SPEC, cache=cache)
    assert torch.allclose(changed.images[0, 0, 0, 0], torch.tensor(99 / 255.0))
    csv_path = tmp_path / "l.csv"
    csv_path.write_text("pets/dog/c.png,dog\n")
    assert load_dataset(str(csv_path), SPEC, cache=cache).labels.tolist() == [0]
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"), SPEC, cache=cache)
    with pytest.raises(DataError, match="neither a folder nor"):
        load_dataset(str(folder / "cat" / "a.png"), SPEC, cache=cache)


def _labelled(names, labels):
    return ImageDataset(images=torch.zeros(len(labels), 1, 2, 2), labels=torch.tensor(labels),
                        class_names=list(names))


def test_match_classes_mismatch_names_both_counts():
    data = _labelled(["a", "b", "c"], [0, 1, 2])
    with pytest.raises(DataError, match="3 classes.*10 outputs"):
        match_classes(data, [str(i) for i in range(10)])


def test_match_classes_reorders_same_names_and_keeps_indices_otherwise():
    data = _labelled(["cat", "dog", "eel"], [0, 1, 2, 2])
    remapped = match_classes(data, ["eel", "cat", "dog"])
    assert remapped.labels.tolist() == [1, 2, 0, 0] and remapped.class_names == ["eel", "cat", "dog"]
    assert data.labels.tolist() == [0, 1, 2, 2]  # the input is untouched
    kept = match_classes(data, ["class 0", "class 1", "class 2"])
    assert kept.labels.tolist() == [0, 1, 2, 2]
    unlabelled = ImageDataset(images=torch.zeros(2, 1, 2, 2), labels=None, class_names=[])
    assert match_classes(unlabelled, ["x", "y"]).class_names == ["x", "y"]


def test_cache_evicts_least_recently_used_by_bytes():
    one = ImageDataset(images=torch.zeros(10, 1, 4, 4), labels=torch.zeros(10, dtype=torch.int64),
                       class_names=["a"])
    size = 10 * 16 * 4 + 10 * 8
    cache = DatasetCache(max_bytes=2 * size)
    cache.put("a", one)
    cache.put("b", one)
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", one)
    assert "b" not in cache and "a" in cache and "c" in cache and cache.nbytes == 2 * size
    assert not cache.put("big", ImageDataset(images=torch.zeros(100, 1, 4, 4), labels=None, class_names=[]))
    assert "big" not in cache and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_decoded_images_are_exact_for_gradient(tmp_path):
    arr = np.tile(np.arange(4, dtype=np.uint8) * 60, (4, 1))
    Image.fromarray(arr).save(tmp_path / "g.png")
    data = load_image_folder(tmp_path, SPEC)
    assert torch.allclose(data.images[0, 0], torch.from_numpy(arr / 255.0).float())
