"""User data sets: an image folder (one sub-folder per class), a CSV list, or the built-in digits.

Loading decodes every file once (with progress and cancellation), leaves out
files that are not usable images and says why (``dataset.skipped``), and
keeps the result in the shared cache so the next evaluation starts at once.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from squeezestudio.core.data.cache import DatasetCache, files_fingerprint, shared_cache
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec, SkippedFile
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.data.disk_cache import PixelCache, cache_key
from squeezestudio.core.data.images import (check_spec, decode_size, is_image_file, load_image, normalise_pixels,
                                            prepare_pixels)
from squeezestudio.core.data.pixel_images import PixelImages
from squeezestudio.core.errors import DataError, ImageDecodeError
from squeezestudio.core.limits import current_limits, limits_hint
from squeezestudio.core.model.labels import ClassLookup, has_placeholder_names
from squeezestudio.core.printable import printable
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

_HEADER_WORDS = {"path", "file", "filename", "image", "label", "class", "target"}
_DIGIT_SPLITS = {"digits": None, "digits:train": "train", "digits:val": "val", "digits:all": "all"}


@dataclass
class _Plan:
    """Which files to decode, with their labels, before any decoding happens."""

    name: str
    items: list[tuple[Path, Optional[int]]]
    class_names: list[str]
    labelled: bool
    skipped: list[SkippedFile] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)  # files whose change invalidates the cache


def _visible(name: str) -> bool:
    """Hidden files and folders (``.DS_Store``, ``.git``) are never data."""
    return not name.startswith(".")


def _inside(path: Path, root: Path) -> bool:
    """True when ``path`` (symbolic links followed) lies inside ``root``."""
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def _image_files(folder: Path, root: Path, skipped: list[SkippedFile], follow_links: bool) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted, hidden files and folders left out).

    A file or folder whose symbolic link leads out of ``root`` is skipped
    with a reason, unless ``follow_links``.
    """
    found = []
    for p in folder.rglob("*"):
        if not (is_image_file(p) and all(_visible(q) for q in p.relative_to(folder).parts)):
            continue
        if not follow_links and not _inside(p, root):
            skipped.append(SkippedFile(str(p), "a symbolic link leading out of the data folder (not followed)"))
        elif p.is_file():
            found.append(p)
    return sorted(found)


def _plan_folder(root: Path, class_names: Optional[Sequence[str]], follow_links: bool = False) -> _Plan:
    if not root.is_dir():
        raise DataError(f"the data folder {root} does not exist or is not a folder")
    real_root = Path(os.path.realpath(root))
    link_skips: list[SkippedFile] = []
    subdirs = []
    for p in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p.name)):
        if follow_links or _inside(p, real_root):
            subdirs.append(p)
        else:
            link_skips.append(SkippedFile(str(p), "a class folder that is a symbolic link leading out of the data "
                                                  "folder (not followed; pass follow_links to use it)"))
    check_class_count(len(subdirs), f"the data folder {root}")
    loose = sorted(p for p in root.iterdir() if p.is_file() and _visible(p.name) and is_image_file(p))
    per_class = {d.name: _image_files(d, real_root, link_skips, follow_links) for d in subdirs}
    if not any(per_class.values()):
        if not loose and link_skips:
            raise DataError(f"no images found in {root}: its {len(link_skips):,d} images or class folders are "
                            "symbolic links leading out of it, which are not followed unless asked "
                            "(--follow-links)")
        if not loose:
            raise DataError(f"no images found in {root}; put the images of each class in its own sub-folder")
        # A flat folder of images: no labels (predictions and agreement still work).
        return _Plan(root.name, [(p, None) for p in loose], list(class_names or []), labelled=False,
                     skipped=link_skips)
    folder_names = [d.name for d in subdirs]
    if class_names is None:
        names = folder_names
        index = {n: i for i, n in enumerate(names)}
    else:
        names = list(class_names)
        lookup = ClassLookup(names)
        unknown = [n for n in folder_names if n not in lookup]
        if unknown:
            raise DataError(f"the folder {root / unknown[0]} is not one of the {len(names)} class names given")
        index = {n: lookup.index(n) for n in folder_names}
    items = [(p, index[d]) for d in folder_names for p in per_class[d]]
    skipped = link_skips + [SkippedFile(str(p), "not inside a class sub-folder") for p in loose]
    return _Plan(root.name, items, names, labelled=True, skipped=skipped)


def _is_index(text: str) -> bool:
    """ASCII digits only: '²' and '٣' are digits to ``str.isdigit`` but not to ``int``."""
    return text.isascii() and text.isdigit()


def check_class_count(count: int, where: str) -> None:
    """Refuse more classes than the ``class_count`` limit before anything is allocated for them."""
    limit = current_limits().class_count
    if count > limit:
        raise DataError(f"{where} names {count:,d} classes, over the limit of {limit:,d} "
                        f"({limits_hint('class_count')})")


def _parse_label(text: str, lookup: Optional[ClassLookup], where: str) -> str | int:
    if lookup is not None:
        names = lookup.names
        if text in lookup:
            try:
                return lookup.index(text)
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
        if _is_index(text.lstrip("-")) and 0 <= int(text) < len(names):
            return int(text)
        raise DataError(f"{where}: the label {printable(text[:80])!r} is neither one of the {len(names)} class "
                        f"names nor an index below {len(names)}")
    if _is_index(text):
        check_class_count(int(text) + 1, f"{where}: the label {text[:40]}")
        return int(text)
    if len(text) > current_limits().key_length:
        raise DataError(f"{where}: a label of {len(text):,d} characters is too long for a class name")
    return text


def _csv_rows(text: str, csv_path: Path) -> tuple[list[tuple[int, list[str]]], int]:
    """(line number, stripped cells) of the non-empty rows, identical lines kept once; and how many repeated.

    Cheap checks first: the row limit on the raw line count, and identical
    lines (a million rows naming one file) dropped before the CSV parser
    sees them. A file with quotes (fields may span lines) is parsed whole.
    """
    limit = current_limits().csv_rows
    lines = text.splitlines()
    if len(lines) > limit:
        raise DataError(f"the CSV list {csv_path} has {len(lines):,d} rows, over the limit of {limit:,d} "
                        f"({limits_hint('csv_rows')})")
    if '"' in text:
        numbered = list(enumerate(csv.reader(io.StringIO(text)), start=1))
        repeated = 0
    else:
        first: dict[str, int] = {}
        for i, line in enumerate(lines, start=1):
            if line not in first:
                first[line] = i
        repeated = sum(1 for line in lines if line.strip()) - sum(1 for line in first if line.strip())
        numbered = list(zip(first.values(), csv.reader(list(first))))
    rows = []
    for n, row in numbered:
        cells = [c.strip() for c in row]
        if any(cells):
            rows.append((n, cells))
    return rows, repeated


def _plan_csv(csv_path: Path, class_names: Optional[Sequence[str]]) -> _Plan:
    if not csv_path.is_file():
        raise DataError(f"the CSV list {csv_path} does not exist")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"the CSV list {csv_path} cannot be read as UTF-8 text ({exc})") from None
    rows, repeated = _csv_rows(text, csv_path)
    if rows and rows[0][1][0].lower() in _HEADER_WORDS or (
            rows and len(rows[0][1]) > 1 and rows[0][1][1].lower() in _HEADER_WORDS):
        rows = rows[1:]
    if not rows:
        raise DataError(f"the CSV list {csv_path} has no rows; write one `path,label` per line")
    labelled = len(rows[0][1]) > 1 and rows[0][1][1] != ""
    entries: list[tuple[Path, str | int | None]] = []
    early_skips: list[SkippedFile] = []
    seen: set[str] = set()
    duplicates = repeated
    given = None if class_names is None else ClassLookup(class_names)
    for n, cells in rows:
        has_label = len(cells) > 1 and cells[1] != ""
        if has_label != labelled:
            raise DataError(f"{csv_path.name} line {n}: every row needs a label, or none does")
        if cells[0] in seen:  # the same file twice would count twice in every accuracy
            duplicates += 1
            continue
        where = f"{csv_path.name} line {n}"
        if "\0" in cells[0]:
            early_skips.append(SkippedFile(printable(cells[0][:200]), f"line {n}: the path contains a NUL byte"))
            continue
        seen.add(cells[0])
        path = Path(cells[0]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        entries.append((path, _parse_label(cells[1], given, where) if labelled else None))
    # Labels are indices when class names were given or every label is a number;
    # otherwise they are names, numbered in sorted order.
    by_index = class_names is not None or all(isinstance(lab, int) for _, lab in entries)
    if class_names is not None:
        names = list(class_names)
    elif not labelled:
        names = []
    elif by_index:
        top = max((int(lab) for _, lab in entries), default=-1)  # type: ignore[arg-type]
        names = [str(i) for i in range(top + 1)]
    else:
        names = sorted({str(lab) for _, lab in entries})
        check_class_count(len(names), f"the CSV list {csv_path}")
    lookup = {n: i for i, n in enumerate(names)}
    items: list[tuple[Path, Optional[int]]] = []
    skipped: list[SkippedFile] = early_skips
    if duplicates:
        skipped.append(SkippedFile(str(csv_path), f"{duplicates:,d} rows name a file listed earlier; each file "
                                                  "is used once"))
    for path, lab in entries:
        if not path.is_file():
            skipped.append(SkippedFile(str(path), "file not found"))
            continue
        items.append((path, None if lab is None else int(lab) if by_index else lookup[str(lab)]))
    return _Plan(csv_path.stem, items, names, labelled, skipped, extra_files=[csv_path])


def _decode_rows(plan: _Plan, spec: PreprocessSpec, progress: Optional[ProgressCallback],
                 cancel: Optional[CancelToken], where: str,
                 sink: Callable[[np.ndarray], None]) -> tuple[list[int], list[SkippedFile]]:
    """Decode every planned file into a ``(C, H, W)`` uint8 row given to ``sink``, skipping unusable ones.

    Returns the indices of the planned files that became rows, in order,
    and the files skipped at decode (with why).
    """
    n = len(plan.items)
    min_size = decode_size(spec)
    kept: list[int] = []
    skipped: list[SkippedFile] = []
    step = max(1, n // 100)
    report(progress, 0.0, f"reading {n} images")
    for i, (path, _) in enumerate(plan.items):
        check(cancel)
        try:
            pixels = prepare_pixels(load_image(path, min_size=min_size), spec)
        except ImageDecodeError as exc:
            skipped.append(SkippedFile(str(path), str(exc)))
        except (ValueError, OverflowError, MemoryError) as exc:  # a size Pillow's resize cannot handle
            skipped.append(SkippedFile(str(path), f"cannot be resized for the model ({type(exc).__name__})"))
        else:
            sink(pixels)
            kept.append(i)
        if (i + 1) % step == 0 or i + 1 == n:
            report(progress, (i + 1) / n, f"read {i + 1}/{n} images")
    if not kept:
        every = plan.skipped + skipped
        first = f" (first: {every[0].path}: {every[0].reason})" if every else ""
        raise DataError(f"none of the {len(plan.items) + len(plan.skipped)} files in {where} "
                        f"is a usable image{first}")
    return kept, skipped


def _dataset(plan: _Plan, kept: list[int], skipped: list[SkippedFile], images: "torch.Tensor | PixelImages",
             notices: Optional[list[str]] = None) -> ImageDataset:
    labels = [plan.items[i][1] for i in kept]
    return ImageDataset(images=images,
                        labels=torch.tensor([-1 if y is None else y for y in labels], dtype=torch.int64)
                        if plan.labelled else None,
                        class_names=list(plan.class_names), name=plan.name,
                        paths=[str(plan.items[i][0]) for i in kept], skipped=plan.skipped + skipped,
                        notices=list(notices or []))


def _decode(plan: _Plan, spec: PreprocessSpec, progress: Optional[ProgressCallback],
            cancel: Optional[CancelToken], where: str, notices: Optional[list[str]] = None) -> ImageDataset:
    """Decode and preprocess every planned file into one float tensor in memory, skipping unusable ones."""
    check_spec(spec)
    n = len(plan.items)
    try:
        images = torch.empty((n, spec.channels, spec.height, spec.width), dtype=torch.float32)
    except (RuntimeError, MemoryError):
        gib = n * spec.channels * spec.height * spec.width * 4 / 2**30
        raise DataError(f"{n} images at {spec.height}x{spec.width} need {gib:.1f} GiB of memory; "
                        "use fewer images or a smaller input size") from None
    count = [0]

    def put(pixels: np.ndarray) -> None:
        images[count[0]] = torch.from_numpy(normalise_pixels(pixels, spec))
        count[0] += 1

    kept, skipped = _decode_rows(plan, spec, progress, cancel, where, put)
    return _dataset(plan, kept, skipped, images[: len(kept)].clone() if len(kept) < n else images, notices)


def _decode_through_disk(plan: _Plan, spec: PreprocessSpec, progress: Optional[ProgressCallback],
                         cancel: Optional[CancelToken], where: str, key: str, disk: PixelCache,
                         memory_bytes: int) -> ImageDataset:
    """The set from its uint8 cache file (built first if missing or damaged); in memory if no file can be written.

    The result holds one float tensor when that fits ``memory_bytes``, else
    a :class:`PixelImages` view read batch by batch.
    """
    check_spec(spec)
    shape = (spec.channels, spec.height, spec.width)
    info = disk.find(key, shape, len(plan.items))
    if info is None:
        writer = disk.writer(key, shape)
        if writer is None:
            return _decode(plan, spec, progress, cancel, where, disk.notices)
        try:
            kept, decode_skips = _decode_rows(plan, spec, progress, cancel, where, writer.add)
            info = writer.finish(key, kept, [(s.path, s.reason) for s in decode_skips])
        except OSError as exc:
            writer.abort()
            disk.write_failed(exc)
            return _decode(plan, spec, progress, cancel, where, disk.notices)
        except BaseException:
            writer.abort()
            raise
        disk.prune(info.path)
    else:
        report(progress, 1.0, f"{info.count} images (cached on disk)")
    sources = [str(plan.items[i][0]) for i in info.kept]
    view = PixelImages(info, spec, sources, key)
    skipped = [SkippedFile(p, r) for p, r in info.skipped]
    images = view.to_tensor() if 4 * view.numel() <= memory_bytes else view
    return _dataset(plan, info.kept, skipped, images, disk.notices)


def load_image_folder(root: str | Path, spec: PreprocessSpec, *, class_names: Optional[Sequence[str]] = None,
                      progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> ImageDataset:
    """Images under ``root/<class>/...`` (class sub-folders sorted by name, or ordered as ``class_names``).

    A folder with images but no sub-folders gives an unlabelled data set.
    """
    root = Path(root).expanduser()
    return _decode(_plan_folder(root, class_names), spec, progress, cancel, str(root))


def load_csv_list(csv_path: str | Path, spec: PreprocessSpec, *, class_names: Optional[Sequence[str]] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> ImageDataset:
    """Images listed as ``path,label`` rows (paths relative to the CSV's folder; optional header).

    A label is a class name or a class index; rows with only a path give an
    unlabelled data set. Missing files are skipped and reported.
    """
    csv_path = Path(csv_path).expanduser()
    return _decode(_plan_csv(csv_path, class_names), spec, progress, cancel, str(csv_path))


def load_dataset(source: str, spec: PreprocessSpec, *, split: str = "val",
                 class_names: Optional[Sequence[str]] = None, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None, cache: Optional[DatasetCache] = None,
                 max_classes: Optional[int] = None, follow_links: bool = False,
                 cache_dir: Optional[str | Path] = None, memory_bytes: Optional[int] = None) -> ImageDataset:
    """Load ``digits`` / ``digits:train`` / ``digits:val`` / ``digits:all``, a folder or a ``.csv`` list.

    ``split`` applies to a bare ``digits``. Results are cached (``cache``
    defaults to the shared one) under the source's files and the spec; a
    folder or list is also cached on disk as uint8 (in ``cache_dir``, by
    default :func:`~squeezestudio.core.data.disk_cache.default_cache_dir`),
    and a set whose float tensor would exceed ``memory_bytes`` (default: the
    memory cache's budget) is read from there batch by batch.
    ``max_classes`` (the model's number of outputs) refuses data with more
    classes before any image is decoded; ``follow_links`` uses class folders
    and images whose symbolic links lead out of the data folder.
    """
    cache = shared_cache() if cache is None else cache
    names_key = None if class_names is None else tuple(class_names)
    key_name = source.strip().lower()
    if key_name in _DIGIT_SPLITS:
        digit_split = _DIGIT_SPLITS[key_name] or split
        key = ("digits", digit_split, spec)
        data = cache.get(key)
        if data is None:
            data = load_digits_split(digit_split, spec)  # type: ignore[arg-type]
            cache.put(key, data)
        report(progress, 1.0, "digits loaded")
        return data
    path = Path(source).expanduser()
    if path.is_dir():
        plan = _plan_folder(path, class_names, follow_links)
    elif path.is_file() and path.suffix.lower() == ".csv":
        plan = _plan_csv(path, class_names)
    elif not path.exists():
        raise DataError(f"the data source {source} does not exist; give a folder, a .csv list or 'digits'")
    else:
        raise DataError(f"the data source {source} is neither a folder nor a .csv list")
    if max_classes is not None and plan.labelled and len(plan.class_names) > max_classes:
        raise DataError(f"the data has {len(plan.class_names):,d} classes but the model has {max_classes} outputs; "
                        "use data with the model's classes (checked before decoding any image)")
    files = [p for p, _ in plan.items] + [Path(s.path) for s in plan.skipped] + plan.extra_files
    fingerprint = files_fingerprint(files)
    key = ("files", str(path.resolve()), spec, names_key, fingerprint)
    data = cache.get(key)
    if data is None:
        disk = PixelCache(None if cache_dir is None else Path(cache_dir))
        data = _decode_through_disk(plan, spec, progress, cancel, str(path),
                                    cache_key(path.resolve(), spec, names_key, fingerprint), disk,
                                    cache.max_bytes if memory_bytes is None else int(memory_bytes))
        cache.put(key, data)
    else:
        report(progress, 1.0, f"{len(data)} images (cached)")
    return data


def match_classes(dataset: ImageDataset, model_class_names: Sequence[str]) -> ImageDataset:
    """The data set with labels in the model's class order.

    Names found among the model's (same set reordered, or a subset of its
    classes) -> labels remapped by name; integer names (``0``, ``7``...) below
    the model's class count -> used as indices; otherwise, with as many
    classes as the model, labels are kept as indices (``class 3`` of the
    model is the data's fourth class). Anything else is a :class:`DataError`.
    """
    model_names = list(model_class_names)
    if dataset.labels is None:
        return replace(dataset, class_names=model_names)
    data_names = list(dataset.class_names)
    if data_names == model_names:
        return dataset
    by_name = ClassLookup(model_names)
    if all(n in by_name for n in data_names):
        lookup = torch.tensor([by_name.index(n) for n in data_names], dtype=torch.int64)
    elif all(n.isascii() and n.isdigit() and int(n) < len(model_names) for n in data_names):
        lookup = torch.tensor([int(n) for n in data_names], dtype=torch.int64)
    elif len(data_names) == len(model_names):
        return replace(dataset, class_names=model_names)
    else:
        missing = next(n for n in data_names if n not in by_name)
        raise DataError(f"the data has {len(data_names)} classes but the model has {len(model_names)} outputs, "
                        f"and the class {missing!r} is not one of the model's class names; give the model's "
                        "names with --labels FILE, or use data with the model's classes")
    if dataset.labels.numel() and int(dataset.labels.max()) >= len(lookup):
        raise DataError("a label of the data is outside its own class list")
    return replace(dataset, labels=lookup[dataset.labels], class_names=model_names)


def class_names_from_data(model_class_names: Sequence[str], dataset: ImageDataset) -> Optional[list[str]]:
    """The data's class names (folder names, CSV labels) for a model that carries only placeholders.

    None unless the model's names are ``class 0..n-1``, the data is labelled
    with as many named (not numbered) classes as the model has outputs.
    """
    names = list(dataset.class_names)
    if (dataset.labels is None or not has_placeholder_names(model_class_names)
            or len(names) != len(model_class_names) or all(n.isdigit() for n in names)):
        return None
    return names
