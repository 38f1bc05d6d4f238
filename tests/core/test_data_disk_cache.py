"""The uint8 disk cache: same numbers as decoding in memory, keyed by files and spec, never trusted blindly."""

from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from squeezestudio.core.data import disk_cache
from squeezestudio.core.data.cache import DatasetCache
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset, load_image_folder
from squeezestudio.core.data.images import normalise_pixels, normalise_tensor
from squeezestudio.core.data.pixel_file import DATA_OFFSET
from squeezestudio.core.data.pixel_images import PixelImages
from squeezestudio.core.data.subsets import limited
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.evaluation import evaluate

SPEC = PreprocessSpec(channels=3, height=12, width=10, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
ROW = 3 * 12 * 10


def _image(path, mode, size, seed):
    """A real image file of ``mode`` with seeded random content."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "RGB":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    elif mode == "RGBA":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(16)
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    img.save(path)
    return path


@pytest.fixture
def mixed(tmp_path):
    """Two classes of images of every common mode and of different sizes, plus one broken file."""
    root = tmp_path / "mixed"
    shapes = [("RGB", (30, 20)), ("L", (8, 8)), ("RGBA", (50, 41)), ("P", (17, 33)), ("RGB", (64, 64)),
              ("L", (13, 40))]
    for i, (mode, size) in enumerate(shapes):
        _image(root / ("a" if i % 2 else "b") / f"{i}_{mode}.png", mode, size, seed=i)
    (root / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _load(root, cache_dir, memory_bytes=0, progress=None):
    """Through the disk cache, as a fresh process would (its own memory cache)."""
    return load_dataset(str(root), SPEC, cache=DatasetCache(), cache_dir=cache_dir, memory_bytes=memory_bytes,
                        progress=progress)


def _cache_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".pixels")


def test_normalise_tensor_matches_numpy_bit_for_bit():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 3, 7, 9), dtype=np.uint8)
    for spec in (SPEC, PreprocessSpec(3, 7, 9, mean=(0.5,), std=(0.5,), pixel_scale=255.0)):
        assert torch.equal(normalise_tensor(torch.from_numpy(pixels), spec),
                           torch.from_numpy(normalise_pixels(pixels, spec)))


def test_mixed_modes_and_sizes_read_from_disk_equal_memory_decode(mixed, tmp_path):
    reference = load_image_folder(mixed, SPEC)  # the in-memory path: one float tensor
    data = _load(mixed, tmp_path / "cache")
    assert isinstance(data.images, PixelImages) and len(data) == 6
    assert torch.equal(data.images[:], reference.images)
    assert data.labels.tolist() == reference.labels.tolist() and data.paths == reference.paths
    assert [s.path for s in data.skipped] == [s.path for s in reference.skipped]
    assert "broken.png" in data.skipped[0].path and data.notices == []
    # Indexed the ways evaluation, training and calibration index a tensor.
    assert torch.equal(data.images[-1], reference.images[-1])
    assert torch.equal(data.images[torch.tensor([4, 0, 4])], reference.images[[4, 0, 4]])
    assert torch.equal(data.images[:, 1, 0, 0], reference.images[:, 1, 0, 0])
    assert data.images.shape == reference.images.shape and data.images[0].numel() == ROW
    with pytest.raises(IndexError):
        data.images[6]
    small = _load(mixed, tmp_path / "cache", memory_bytes=1 << 20)  # fits the budget: one float tensor
    assert isinstance(small.images, torch.Tensor) and torch.equal(small.images, reference.images)


def test_evaluation_subsets_and_pickling_of_a_disk_backed_set(mixed, tmp_path):
    data = _load(mixed, tmp_path / "cache")
    memory = load_image_folder(mixed, SPEC)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(ROW, 2))
    on_disk = evaluate(model, data, batch_size=4, use_runtime=False)
    in_memory = evaluate(model, memory, batch_size=4, use_runtime=False)
    assert on_disk.top1 == in_memory.top1 and on_disk.loss == in_memory.loss and on_disk.n == 6
    sub = limited(data, 3)
    assert isinstance(sub.images, PixelImages) and len(sub) == 3
    assert torch.equal(sub.images[:], memory.images[[data.paths.index(p) for p in sub.paths]])
    again = pickle.loads(pickle.dumps(sub))
    assert torch.equal(again.images[:], sub.images[:]) and again.images.digest == sub.images.digest


def test_second_load_reads_the_file_and_edits_or_spec_changes_rebuild(mixed, tmp_path):
    cache_dir = tmp_path / "cache"
    first = _load(mixed, cache_dir)
    messages = []
    second = _load(mixed, cache_dir, progress=lambda fraction, text: messages.append(text))
    assert any("cached on disk" in m for m in messages) and not any("reading" in m for m in messages)
    assert torch.equal(first.images[:], second.images[:]) and len(_cache_files(cache_dir)) == 1
    _image(mixed / "a" / "1_L.png", "L", (9, 9), seed=99)  # an edited file: another key
    edited = _load(mixed, cache_dir)
    assert len(_cache_files(cache_dir)) == 2 and not torch.equal(edited.images[:], first.images[:])
    load_dataset(str(mixed), PreprocessSpec(1, 4, 4, mean=(0.0,), std=(1.0,)), cache=DatasetCache(),
                 cache_dir=cache_dir, memory_bytes=0)  # another preprocessing: another file
    assert len(_cache_files(cache_dir)) == 3


@pytest.mark.parametrize("damage", ["truncate", "header", "metadata", "garbage", "other_key"])
def test_damaged_cache_file_is_reported_and_rebuilt(mixed, tmp_path, damage):
    cache_dir = tmp_path / "cache"
    good = _load(mixed, cache_dir).images[:]
    (path,) = _cache_files(cache_dir)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: DATA_OFFSET + 2 * ROW + 17]
    elif damage == "header":
        raw[12] ^= 0xFF  # the channel count
    elif damage == "metadata":
        raw[-5] ^= 0x01
    elif damage == "garbage":
        raw = bytearray(os.urandom(len(raw)))
    else:  # a valid file of another folder under this name
        other = tmp_path / "other"
        _image(other / "x" / "1.png", "RGB", (10, 12), seed=5)
        _load(other, tmp_path / "other_cache")
        raw = bytearray(_cache_files(tmp_path / "other_cache")[0].read_bytes())
    path.write_bytes(bytes(raw))
    again = _load(mixed, cache_dir)
    assert len(again.notices) == 1 and "not used because it" in again.notices[0] and "rebuilt" in again.notices[0]
    assert torch.equal(again.images[:], good)
    assert _load(mixed, cache_dir).notices == []  # the rebuilt file is sound


def test_damaged_pixel_row_is_decoded_again_and_written_back(mixed, tmp_path):
    cache_dir = tmp_path / "cache"
    good = _load(mixed, cache_dir).images[:]
    (path,) = _cache_files(cache_dir)
    with open(path, "r+b") as f:  # flip bytes inside row 2: the header and metadata stay valid
        f.seek(DATA_OFFSET + 2 * ROW + 50)
        f.write(b"\x00\xff\x00\xff")
    data = _load(mixed, cache_dir)
    assert data.notices == []  # only the row's CRC can tell
    assert torch.equal(data.images[:], good) and data.images.repaired == 1
    fresh = _load(mixed, cache_dir).images
    assert torch.equal(fresh[:], good) and fresh.repaired == 0  # the repaired row was written back
    with open(path, "r+b") as f:
        f.seek(DATA_OFFSET + 2 * ROW)
        f.write(b"\x01" * 8)
    os.remove(data.paths[2])  # damaged under an open view, and its source is gone: a sentence, not wrong numbers
    with pytest.raises(DataError, match="damaged and the image cannot be read again"):
        fresh[2]
    assert torch.equal(fresh[3], good[3])


def test_unwritable_cache_folder_falls_back_to_a_temporary_folder(mixed, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the cache folder's parent should be")
    reference = load_image_folder(mixed, SPEC).images
    data = _load(mixed, blocker / "cache")
    assert len(data.notices) == 1 and "cannot be written" in data.notices[0] and "until the program ends" \
        in data.notices[0]
    assert isinstance(data.images, PixelImages) and torch.equal(data.images[:], reference)
    assert data.images.path.parent == disk_cache._temp_dir
    assert _load(mixed, blocker / "cache").notices == []  # found again in the temporary folder


def test_unwritable_cache_and_temporary_folders_keep_the_set_in_memory(mixed, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setattr(disk_cache, "_temp_dir", None)  # this process has no temporary cache folder yet
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))  # and cannot make one
    data = _load(mixed, blocker / "cache")
    assert "held in memory" in data.notices[0]
    assert isinstance(data.images, torch.Tensor)
    assert torch.equal(data.images, load_image_folder(mixed, SPEC).images)


def test_cancelled_build_leaves_no_file(mixed, tmp_path):
    from squeezestudio.core.progress import Cancelled, CancelToken

    token = CancelToken()
    token.cancel()
    cache_dir = tmp_path / "cache"
    with pytest.raises(Cancelled):
        load_dataset(str(mixed), SPEC, cache=DatasetCache(), cache_dir=cache_dir, cancel=token)
    assert list(cache_dir.iterdir()) == []


def test_default_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(disk_cache.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert disk_cache.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(disk_cache.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert disk_cache.default_cache_dir() == tmp_path / "xdg" / "squeezestudio" / "data"


def test_old_cache_files_are_removed_beyond_the_budget(mixed, tmp_path):
    cache_dir = tmp_path / "cache"
    _load(mixed, cache_dir)
    (old,) = _cache_files(cache_dir)
    os.utime(old, (1, 1))  # used long ago
    stale = cache_dir / ".x.pixels.123.abcd.tmp"  # a build whose process died
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))
    fresh = cache_dir / ".y.pixels.456.abcd.tmp"  # a build in progress elsewhere: kept
    fresh.write_bytes(b"partial")
    _image(mixed / "b" / "new.png", "RGB", (20, 20), seed=7)
    data = load_dataset(str(mixed), SPEC, cache=DatasetCache(), cache_dir=cache_dir, memory_bytes=0)
    assert len(_cache_files(cache_dir)) == 2 and not stale.exists()  # within the default budget
    newest = data.images.path
    roomy = disk_cache.PixelCache(cache_dir, max_bytes=old.stat().st_size + newest.stat().st_size)
    assert roomy.prune(newest) == [] and len(_cache_files(cache_dir)) == 2
    tight = disk_cache.PixelCache(cache_dir, max_bytes=newest.stat().st_size)
    assert tight.prune(newest) == [old] and _cache_files(cache_dir) == [newest] and fresh.exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc/self/maps")
def test_reading_a_batch_leaves_nothing_of_the_file_mapped(mixed, tmp_path):
    data = _load(mixed, tmp_path / "cache")
    path = str(data.images.path)
    for start in range(0, len(data), 4):
        data.images[start:start + 4]
    data.images[torch.tensor([5, 0, 3])]
    with open("/proc/self/maps") as maps:
        assert path not in maps.read()  # resident memory cannot grow with the set: each batch is unmapped
