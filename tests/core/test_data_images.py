"""Robust decoding (EXIF, CMYK, alpha, 16-bit, GIF, corrupt files, bombs) and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.images import load_image, preprocess, to_8bit
from squeezestudio.core.errors import DataError, ImageDecodeError

GRAY_SPEC = PreprocessSpec(channels=1, height=10, width=10, mean=(0.5,), std=(0.5,))


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high; right half white
    arr[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    img = load_image(path)
    assert img.size == (20, 40)  # width and height swapped
    expected = np.rot90(arr, k=-1)  # clockwise: the white right half ends up at the bottom
    got = np.asarray(img).astype(int)
    assert np.abs(got - expected.astype(int)).mean() < 8
    assert got[:15].mean() < 30 and got[25:].mean() > 225


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    img = load_image(path)
    assert img.mode == "RGB"
    r, g, b = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 25 and b < 25


def test_palette_png_with_transparency_composites_on_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putpixel((1, 1), 1)
    img.info["transparency"] = 0  # index 0 (red) is transparent
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    out = load_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (0, 255, 0)


def test_la_image_alpha_is_composited(tmp_path):
    arr = np.zeros((2, 3, 2), dtype=np.uint8)
    arr[..., 1] = [[255, 0, 128], [255, 255, 255]]  # opaque, transparent, half
    path = tmp_path / "la.png"
    Image.fromarray(arr, mode="LA").save(path)
    out = load_image(path)
    assert out.mode == "L"
    row = np.asarray(out)[0].astype(int)
    assert row[0] == 0 and row[1] == 255 and abs(row[2] - 127) <= 1


def test_16bit_gradient_uses_full_8bit_range(tmp_path):
    grad = np.linspace(0, 65535, 256).round().astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(np.tile(grad, (3, 1))).save(path)
    out = load_image(path)
    assert out.mode == "L"
    got = np.asarray(out)[0].astype(int)
    assert got.min() == 0 and got.max() == 255
    assert np.array_equal(got, np.round(grad / 257.0).astype(int))


def test_32bit_integer_and_float_images_are_rescaled():
    ints = Image.fromarray(np.array([[0, 1000, 2000]], dtype=np.int32), mode="I")
    assert list(np.asarray(to_8bit(ints))[0]) == [0, round(1000 / 257), round(2000 / 257)]
    wide = Image.fromarray(np.array([[-10, 0, 90]], dtype=np.int32), mode="I")  # outside 0..65535
    assert list(np.asarray(to_8bit(wide))[0]) == [0, round(10 / 100 * 255), 255]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert list(np.asarray(to_8bit(floats))[0]) == [0, 128, 255]


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 255)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(path) as image:
        assert image.n_frames == 2
    out = load_image(path)
    assert np.asarray(out.convert("L")).max() < 10


def test_text_file_named_png_is_rejected(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageDecodeError, match="notes.png"):
        load_image(path)


def test_empty_missing_and_truncated_files_are_rejected(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageDecodeError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageDecodeError, match="cut.png"):
        load_image(cut)


@pytest.mark.parametrize("side", [12, 20])  # 144 px: warning zone; 400 px: over twice the limit
def test_decompression_bomb_is_an_error(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    Image.new("L", (side, side), 7).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path)


def test_loaded_image_is_detached_from_file(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(path)
    img = load_image(path)
    path.unlink()  # would fail on some systems / break lazy loading if the file were still used
    assert img.getpixel((4, 4)) == (1, 2, 3)


def test_preprocess_center_crop_without_resize_takes_the_middle():
    arr = np.zeros((10, 30), dtype=np.uint8)
    arr[:, 10:20] = 255  # only the middle 10x10 square is white
    out = preprocess(Image.fromarray(arr), GRAY_SPEC)
    assert out.shape == (1, 10, 10) and out.dtype == torch.float32
    assert torch.equal(out, torch.ones(1, 10, 10))  # (1 - 0.5) / 0.5


def test_preprocess_resize_then_crop_and_straight_resize():
    arr = np.zeros((10, 30), dtype=np.uint8)
    arr[:, 10:20] = 255
    img = Image.fromarray(arr)
    spec = PreprocessSpec(channels=1, height=10, width=10, mean=(0.0,), std=(1.0,), resize=20)
    cropped = preprocess(img, spec)  # 60x20, crop columns 25..34 -> inside the white band
    assert torch.allclose(cropped, torch.ones(1, 10, 10), atol=1e-6)
    straight = preprocess(img, PreprocessSpec(channels=1, height=10, width=10, mean=(0.0,), std=(1.0,),
                                              center_crop=False))
    assert straight.shape == (1, 10, 10)
    assert straight[0, :, 0].max() < 0.05 and straight[0, :, 5].min() > 0.95


def test_preprocess_channels_and_per_channel_normalisation():
    img = Image.new("RGB", (4, 4), (255, 0, 51))
    rgb = preprocess(img, PreprocessSpec(channels=3, height=4, width=4, mean=(0.5, 0.0, 0.1),
                                         std=(0.5, 1.0, 0.1)))
    assert rgb.shape == (3, 4, 4)
    assert torch.allclose(rgb[:, 0, 0], torch.tensor([1.0, 0.0, 1.0]), atol=1e-5)
    gray = preprocess(img, PreprocessSpec(channels=1, height=4, width=4, mean=(0.0,), std=(1.0,)))
    luma = (0.299 * 255 + 0.114 * 51) / 255  # ITU-R 601 luma of (255, 0, 51)
    assert abs(float(gray[0, 0, 0]) - luma) < 2 / 255
    gray_to_rgb = preprocess(Image.new("L", (4, 4), 255), PreprocessSpec(
        channels=3, height=2, width=2, mean=(0.0,), std=(1.0,)))
    assert gray_to_rgb.shape == (3, 2, 2) and torch.allclose(gray_to_rgb, torch.ones(3, 2, 2))


def test_preprocess_rejects_bad_specs():
    img = Image.new("L", (4, 4))
    with pytest.raises(DataError, match="channels"):
        preprocess(img, PreprocessSpec(channels=3, height=4, width=4, mean=(0.1, 0.2), std=(1.0,)))
    with pytest.raises(DataError, match="1 \\(grayscale\\) or 3"):
        preprocess(img, PreprocessSpec(channels=2, height=4, width=4, mean=(0.0,), std=(1.0,)))
    with pytest.raises(DataError, match="std"):
        preprocess(img, PreprocessSpec(channels=1, height=4, width=4, mean=(0.0,), std=(0.0,)))


def test_min_size_decodes_large_jpeg_smaller_but_still_big_enough(tmp_path):
    yy, xx = np.mgrid[0:600, 0:800]
    arr = np.stack([xx * 255 // 800, yy * 255 // 600, np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=95)
    full = load_image(path)
    small = load_image(path, min_size=100)
    assert full.size == (800, 600)
    assert small.size[0] < 800 and min(small.size) >= 100
    spec = PreprocessSpec(channels=3, height=32, width=32, mean=(0.0,), std=(1.0,))
    assert (preprocess(full, spec) - preprocess(small, spec)).abs().max() < 0.05
