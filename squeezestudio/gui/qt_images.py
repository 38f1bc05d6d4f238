"""Qt helpers for images the user drops or picks: paths from drops, thumbnails, file dialog.

Decoding goes through the core's robust :func:`load_image`, so a thumbnail
never crashes on a file the classifier would reject; it just has none.
Thumbnails are built as ``QImage`` (safe off the GUI thread) and turned into
pixmaps on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PIL import Image
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QWidget

from squeezestudio.core.data.images import IMAGE_EXTENSIONS, is_image_file, load_image
from squeezestudio.core.errors import SqueezeStudioError

THUMBNAIL_SIZE = 96

IMAGE_FILE_FILTER = "Images ({});;All files (*)".format(
    " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS)))
"""QFileDialog filter: the extensions the core decodes, plus a catch-all."""


def paths_from_mime(mime: Optional[QMimeData]) -> list[Path]:
    """Local files named by a drop, with dropped folders replaced by the images in them.

    Every dropped file is kept, even one that does not look like an image, so
    the user sees why it was refused instead of it silently vanishing. Inside a
    dropped folder only files with image extensions are taken (not recursive).
    """
    if mime is None or not mime.hasUrls():
        return []
    out: list[Path] = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = Path(url.toLocalFile())
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p)))
        else:
            out.append(path)
    return out


def has_local_files(mime: Optional[QMimeData]) -> bool:
    """Whether a drag carries at least one local file or folder (so the drop is worth accepting)."""
    return mime is not None and mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())


def pil_to_qimage(image: Image.Image) -> QImage:
    """A ``QImage`` that owns a copy of ``image``'s pixels (RGBA, 8 bits per channel)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888)
    return qimage.copy()  # detach from ``data``, which Python frees


def thumbnail_image(path: Path | str, size: int = THUMBNAIL_SIZE) -> Optional[QImage]:
    """A thumbnail at most ``size`` pixels on a side, or None if the file is not a usable image.

    Small images (like 8x8 digits) are enlarged without smoothing so their
    pixels stay visible; large ones are reduced smoothly.
    """
    try:
        qimage = pil_to_qimage(load_image(path))
    except (SqueezeStudioError, OSError, ValueError):
        return None
    enlarge = qimage.width() < size and qimage.height() < size
    mode = Qt.TransformationMode.FastTransformation if enlarge else Qt.TransformationMode.SmoothTransformation
    return qimage.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode)


def ask_image_files(parent: Optional[QWidget], start_folder: str = "") -> list[Path]:
    """Let the user pick image files; an empty list when they cancel."""
    names, _ = QFileDialog.getOpenFileNames(parent, "Add images", start_folder, IMAGE_FILE_FILTER)
    return [Path(n) for n in names]


def display_name(path: Path | str, limit: int = 40) -> str:
    """The file name, shortened in the middle when longer than ``limit`` characters."""
    name = Path(path).name
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return f"{name[:half]}\u2026{name[-half:]}"


def unique_paths(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without repeats, in their first order (dropping a file twice shows it once)."""
    seen: set[str] = set()
    out: list[Path] = []
    for p in paths:
        key = str(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
