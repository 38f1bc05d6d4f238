"""Robust image decoding and the preprocessing that turns an image into a model input.

Users point the app at folders collected from anywhere: phone photos with EXIF
rotation, CMYK scans, transparent PNGs, 16-bit microscope frames, animated
GIFs, a stray text file renamed ``.png``, or a decompression bomb. Every one
of these either becomes a plain 8-bit ``L``/``RGB`` image or raises
:class:`ImageDecodeError` with a sentence a user can act on, so one bad file
never aborts an evaluation.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.errors import DataError, ImageDecodeError

PathLike = Union[str, "os.PathLike[str]"]

# File-name endings we treat as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
})

# Errors Pillow (and the codecs under it) raise for malformed files: not only
# UnidentifiedImageError, also OSError ("truncated"), ValueError, SyntaxError
# (some plugins' header parsers), EOFError, struct.error, zlib.error...
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError,
                  TypeError, struct.error, zlib.error, MemoryError)

# Transparent pixels are composited onto white, as image viewers show them.
_BACKGROUND = (255, 255, 255)


def is_image_file(path: PathLike) -> bool:
    """True when the file name ends like an image (the content is checked on load)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: PathLike, *, min_size: Optional[int] = None) -> Image.Image:
    """Decode ``path`` into an 8-bit ``RGB`` or ``L`` image, upright, detached from the file.

    ``min_size`` lets a JPEG decode at a reduced scale (Pillow's ``draft``)
    as long as both sides stay at least that many pixels: several times
    faster for large photos that are resized down anyway. Raises
    :class:`ImageDecodeError` for a missing, empty, corrupt or oversized file
    (Pillow's decompression-bomb warning counts as an error).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        raise ImageDecodeError(f"{p.name} cannot be read: the file does not exist or is not accessible") from None
    if not p.is_file():
        raise ImageDecodeError(f"{p.name} is not a file")
    if size == 0:
        raise ImageDecodeError(f"{p.name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                check_proportions(p.name, *img.size)
                if getattr(img, "is_animated", False):
                    img.seek(0)  # animated: the first frame only
                if min_size is not None and img.format == "JPEG":
                    img.draft(None, (min_size, min_size))
                img.load()
                return to_8bit(_upright_copy(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(
            f"{p.name} is too large to decode safely (more than {Image.MAX_IMAGE_PIXELS:,} pixels; "
            "possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{p.name} is not an image Pillow can read") from None
    except _DECODE_ERRORS as exc:
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        raise ImageDecodeError(f"{p.name} is corrupt or truncated ({reason})") from None


MAX_ASPECT = 1000
"""Longest side over shortest: an 89,000,000x1 strip would be resized to billions of pixels."""


def check_proportions(name: str, width: int, height: int) -> None:
    """Refuse, from the header alone, an image no classifier input can be made of."""
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageDecodeError(f"{name} is {width}x{height} pixels, too elongated to resize into a model input "
                               f"(sides differ more than {MAX_ASPECT}-fold)")


def _upright_copy(img: Image.Image) -> Image.Image:
    """A copy detached from the file, rotated per its EXIF orientation (ignored if the EXIF is broken)."""
    try:
        upright = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        upright = None  # a malformed EXIF block should not cost the user the image
    return img.copy() if upright is None or upright is img else upright


def to_8bit(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``L`` or ``RGB`` (an ``L``/``RGB`` image is returned as is).

    Alpha is composited onto white; palette transparency is honoured; 16/32-bit
    integer and float images are rescaled to the full 0..255 range rather than
    clipped (Pillow's own ``convert("L")`` clips 16-bit values at 255).
    """
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in img.info
        if has_alpha:
            return _composite(img.convert("RGBA"))
        return img.convert("RGB")
    if mode in ("LA", "La"):
        return _composite(img.convert("RGBA")).convert("L")
    if mode in ("RGBA", "RGBa"):
        return _composite(img.convert("RGBA"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_l(img)
    if mode == "RGBX":
        return img.convert("RGB")
    # CMYK, YCbCr, LAB, HSV and anything else Pillow knows how to turn into RGB.
    return img.convert("RGB")


def _composite(rgba: Image.Image) -> Image.Image:
    """Flatten an RGBA image onto the white background."""
    background = Image.new("RGB", rgba.size, _BACKGROUND)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grayscale image to 8 bits.

    16-bit images map 0..65535 to 0..255 (``v / 257``), so a full-range
    gradient stays full range. ``I`` images within 0..65535 are treated the
    same way (Pillow opens some 16-bit files as ``I``); other ranges, and float
    images outside 0..1, are stretched from their own min..max.
    """
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = arr.astype(np.float32) / 257.0
    elif img.mode == "F" and arr.size and float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0:
        scaled = arr.astype(np.float32) * 255.0
    elif img.mode == "I" and arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 65535:
        scaled = arr.astype(np.float32) / 257.0
    else:
        data = np.nan_to_num(arr.astype(np.float64))
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
        scaled = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _target_size(width: int, height: int, spec: PreprocessSpec) -> tuple[int, int]:
    """Size to resize to before the center crop (an exact ``(h, w)`` resize, or scaled to cover the crop)."""
    if isinstance(spec.resize, tuple):
        return max(spec.resize[1], spec.width), max(spec.resize[0], spec.height)
    if spec.resize is not None:
        scale = spec.resize / min(width, height)
    else:
        scale = max(spec.width / width, spec.height / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if new_w < spec.width or new_h < spec.height:
        # A very elongated image whose shorter-side resize leaves the crop uncovered: enlarge to cover it.
        cover = max(spec.width / new_w, spec.height / new_h)
        new_w, new_h = max(spec.width, round(new_w * cover)), max(spec.height, round(new_h * cover))
    return new_w, new_h


def decode_size(spec: PreprocessSpec) -> int:
    """The smallest side a decoded image needs for ``spec`` (the ``min_size`` of :func:`load_image`)."""
    resize = max(spec.resize) if isinstance(spec.resize, tuple) else spec.resize or 0
    return max(spec.height, spec.width, resize)


def check_spec(spec: PreprocessSpec) -> None:
    """Raise :class:`DataError` if ``spec`` cannot describe a model input."""
    if spec.channels not in (1, 3):
        raise DataError(f"preprocessing needs 1 (grayscale) or 3 (RGB) channels, not {spec.channels}")
    if spec.height < 1 or spec.width < 1:
        raise DataError(f"the input size {spec.height}x{spec.width} must be at least 1x1 pixel")
    for label, values in (("mean", spec.mean), ("std", spec.std)):
        if len(values) not in (1, spec.channels):
            raise DataError(f"the normalisation {label} has {len(values)} values but the input has "
                            f"{spec.channels} channels")
    if any(s == 0 for s in spec.std):
        raise DataError("the normalisation std must not contain 0")
    sizes = spec.resize if isinstance(spec.resize, tuple) else () if spec.resize is None else (spec.resize,)
    if any(int(r) < 1 for r in sizes):
        raise DataError(f"the resize size must be a positive number of pixels, not {spec.resize}")
    if spec.pixel_scale <= 0:
        raise DataError(f"the pixel scale must be positive, not {spec.pixel_scale}")
    if spec.channel_order not in ("rgb", "bgr"):
        raise DataError(f"the channel order must be rgb or bgr, not {spec.channel_order!r}")


def normalisation(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std as ``(C, 1, 1)`` arrays, broadcasting one value to all channels."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    mean = np.array(np.broadcast_to(mean, (spec.channels,))).reshape(-1, 1, 1)
    std = np.array(np.broadcast_to(std, (spec.channels,))).reshape(-1, 1, 1)
    return mean, std


def prepare_pixels(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """The geometry and colour steps of :func:`preprocess`: a ``(C, H, W)`` uint8 array.

    What the model sees before scaling and normalisation (the GUI previews
    it; a disk cache can hold it at one byte per value).
    """
    check_spec(spec)
    want = "L" if spec.channels == 1 or spec.grayscale else "RGB"
    img = image if image.mode in ("L", "RGB") else to_8bit(image)
    if img.mode != want:
        img = img.convert(want)
    resample = Image.Resampling.BILINEAR
    if spec.center_crop:
        new_w, new_h = _target_size(img.width, img.height, spec)
        if (new_w, new_h) != img.size:
            img = img.resize((new_w, new_h), resample)
        left, top = (new_w - spec.width) // 2, (new_h - spec.height) // 2
        if (new_w, new_h) != (spec.width, spec.height):
            img = img.crop((left, top, left + spec.width, top + spec.height))
    elif img.size != (spec.width, spec.height):
        img = img.resize((spec.width, spec.height), resample)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None, :, :]
        if spec.channels == 3:
            arr = np.repeat(arr, 3, axis=0)
    else:
        arr = arr.transpose(2, 0, 1)
        if spec.channel_order == "bgr":
            arr = arr[::-1]
    return np.ascontiguousarray(arr)


def normalise_pixels(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 ``(..., C, H, W)`` -> float32 ``pixels / (255 / pixel_scale)``, then ``(x - mean) / std``.

    A division, not a multiplication by 1/255: that is what the pipelines
    models are trained and checked with compute (torchvision's ``ToTensor``,
    ``np.asarray(img, np.float32) / 255``), bit for bit. Multiplying by the
    reciprocal differs by one float32 ulp on some pixels, and an int8 model
    turns that ulp into a different class where an activation sits on a
    quantization boundary (2 of 359 images flipped on an int8 ONNX file).
    """
    mean, std = normalisation(spec)
    divisor = np.float32(255.0 / spec.pixel_scale)
    return np.ascontiguousarray((pixels.astype(np.float32) / divisor - mean) / std, dtype=np.float32)


def normalise_tensor(pixels: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """:func:`normalise_pixels` for a uint8 CPU tensor ``(..., C, H, W)``, in place on one float copy.

    The same float32 operations in the same order, so a batch read from the
    disk cache equals what :func:`preprocess` makes of the image, bit for bit.
    In numpy rather than torch on purpose: torch would run a batch this size
    on its thread pool, whose threads then spin while onnxruntime evaluates
    the batch on the same cores (measured on 2 cores: a MobileNetV2-shaped
    model read from the disk cache ran at 170-245 images/s with torch's
    normalisation, 263-266 with this one, 275-292 from memory).
    """
    mean, std = normalisation(spec)
    out = pixels.numpy().astype(np.float32)
    np.divide(out, np.float32(255.0 / spec.pixel_scale), out=out)
    np.subtract(out, mean, out=out)
    np.divide(out, std, out=out)
    return torch.from_numpy(out)


def preprocess(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    """Turn a decoded image into a normalised ``(C, H, W)`` float32 tensor.

    Grayscale or RGB per ``spec.channels`` (``grayscale`` makes RGB gray);
    resized per ``spec.resize`` (or just enough to cover the target when it is
    None) then center-cropped, or a straight resize when ``center_crop`` is
    False; channels swapped for BGR; scaled to ``[0, pixel_scale]``; then
    ``(x - mean) / std`` per channel.
    """
    return torch.from_numpy(normalise_pixels(prepare_pixels(image, spec), spec))
