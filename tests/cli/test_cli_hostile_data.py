"""Hostile data files through the command line: one sentence or a skipped file, never a traceback (issue 15)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import hostile_builders as hb
from hostile_cli import assert_refused, run_hostile
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.io.loading import save_state_dict


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data_model") / "lenet5.pt"
    save_state_dict(hb.small_handle(), path)
    return path


def _eval(capsys, model: Path, data: Path):
    return run_hostile(capsys, "eval", model, "--data", data)


def test_huge_csv_label_is_refused_before_allocating_classes(capsys, model: Path, tmp_path: Path) -> None:
    hb.small_png(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("a.png,100000000\n")
    assert_refused(_eval(capsys, model, tmp_path / "list.csv"), "100,000,001 classes", "class_count")


def test_superscript_digit_label_is_a_name_not_a_crash(capsys, model: Path, tmp_path: Path) -> None:
    hb.small_png(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("a.png,\u00b2\n")
    assert_refused(_eval(capsys, model, tmp_path / "list.csv"), "classes")


def test_nul_byte_in_a_path_is_skipped_with_a_reason(capsys, model: Path, tmp_path: Path) -> None:
    hb.small_png(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("a\0.png,0\n")
    result = _eval(capsys, model, tmp_path / "list.csv")
    assert_refused(result, "usable image", "NUL byte")


def _spec(size: int = 28) -> PreprocessSpec:
    return PreprocessSpec(channels=1, height=size, width=size, mean=(0.0,), std=(1.0,))


def test_89_million_pixel_strip_is_skipped_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    strip = hb.png_strip(tmp_path / "data" / "a" / "strip.png")  # a real, valid 89,000,000 x 1 PNG
    hb.small_png(tmp_path / "data" / "a" / "ok.png")
    start = time.process_time()
    data = load_dataset(str(tmp_path / "data"), _spec())
    assert time.process_time() - start < 5.0
    assert len(data) == 1 and [s.path for s in data.skipped] == [str(strip)]
    assert "too elongated" in data.skipped[0].reason


def test_a_million_rows_naming_one_file_decode_it_once(tmp_path: Path) -> None:
    hb.small_png(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("a.png,0\n" * 1_000_000)
    start = time.process_time()
    data = load_dataset(str(tmp_path / "list.csv"), _spec())
    assert time.process_time() - start < 5.0
    assert len(data) == 1 and "999,999 rows name a file listed earlier" in data.skipped[0].reason


def test_class_count_is_checked_before_decoding(capsys, model: Path, tmp_path: Path) -> None:
    big = hb.png_strip(tmp_path / "big.png", width=3000, height=3000)  # seconds to decode 200 times
    rows = []
    for i in range(200):
        os.link(big, tmp_path / f"img{i}.png")
        rows.append(f"img{i}.png,{i % 20}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result = _eval(capsys, model, tmp_path / "list.csv")
    assert_refused(result, "20 classes", "before decoding")
    assert result[3] < 2.0


def test_symlinked_class_folder_out_of_the_root_is_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "system"
    outside.mkdir()
    for i in range(3):
        hb.small_png(outside / f"x{i}.png")
    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    hb.small_png(root / "cat" / "c.png")
    (root / "dog").symlink_to(outside, target_is_directory=True)
    (root / "cat" / "link.png").symlink_to(outside / "x0.png")
    spec = _spec(8)
    data = load_dataset(str(root), spec)
    assert data.class_names == ["cat"] and len(data) == 1
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert "symbolic link leading out" in reasons["dog"] and "symbolic link leading out" in reasons["link.png"]
    followed = load_dataset(str(root), spec, follow_links=True)
    assert followed.class_names == ["cat", "dog"] and len(followed) == 5
    with pytest.raises(DataError, match="the data has 2 classes but the model has 1"):
        load_dataset(str(root), spec, follow_links=True, max_classes=1)


def _digit_folder(root: Path) -> Path:
    for label in ("0", "1"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            hb.small_png(root / label / f"{i}.png", size=8 + i)
    return root


def test_unwritable_or_damaged_cache_is_a_note_and_the_same_numbers(capsys, model: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    from squeezestudio.core.data.cache import shared_cache

    data = _digit_folder(tmp_path / "digits")
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("SQUEEZESTUDIO_CACHE_DIR", str(cache_dir))
    code, first, err, _ = run_hostile(capsys, "eval", model, "--data", data)
    assert code == 0 and "note:" not in first, err
    (cache_file,) = cache_dir.glob("*.pixels")
    cache_file.write_bytes(cache_file.read_bytes()[:-10])  # truncated
    shared_cache().clear()  # as a new process would start
    code, second, err, _ = run_hostile(capsys, "eval", model, "--data", data)
    assert code == 0 and "note: the cached images" in second and "rebuilt" in second, (second, err)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SQUEEZESTUDIO_CACHE_DIR", str(blocker / "cache"))
    shared_cache().clear()
    code, third, err, _ = run_hostile(capsys, "eval", model, "--data", data)
    assert code == 0 and "note: the cache folder" in third and "cannot be written" in third, (third, err)
    numbers = [[line for line in out.splitlines() if line.startswith(("top-1", "loss"))]
               for out in (first, second, third)]
    assert numbers[0] and numbers[0] == numbers[1] == numbers[2]
