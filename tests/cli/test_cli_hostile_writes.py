"""Output paths under faults: checked before any work, only regular files replaced, no leftovers.

As root, ``-o`` onto a character device, a FIFO or a symbolic link used to
replace it with a regular file (an atomic rename goes over anything), OSError
escaped as a traceback after the whole compression had run, and a ``kill -9``
mid-write left hidden temporary files that nothing removed.
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hostile_builders as hb
from hostile_cli import assert_refused, run_hostile
from squeezestudio.core.atomic_write import TEMP_SUFFIX, atomic_write_bytes
from squeezestudio.core.compression.codec import load_sqz
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.loading import save_state_dict
from squeezestudio.core.compression.registry import default_registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("writes") / "mlp.pt"
    save_state_dict(hb.mlp_handle(), path)
    return path


def _compress(capsys, model: Path, out: Path):
    return run_hostile(capsys, "compress", model, "--data", "none", "--prune", "0.5", "-o", out)


def _special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"out_{kind}.sqz"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null node of our own
    elif kind == "symlink":
        target = tmp_path / "elsewhere.sqz"
        target.write_bytes(b"precious")
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink", "folder"])
def test_only_regular_files_are_replaced(capsys, model: Path, tmp_path: Path, kind: str) -> None:
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    path = _special(tmp_path, kind)
    before = os.lstat(path)
    result = _compress(capsys, model, path)
    assert_refused(result, "only replaces regular files")
    assert "compressing" not in result[1] and "Top-1" not in result[1]  # refused before any work
    after = os.lstat(path)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    if kind == "symlink":
        assert (tmp_path / "elsewhere.sqz").read_bytes() == b"precious"


def test_missing_folder_is_refused_before_work(capsys, model: Path, tmp_path: Path) -> None:
    assert_refused(_compress(capsys, model, tmp_path / "no" / "such" / "out.sqz"), "does not exist")


def test_nul_byte_in_output_path_is_one_sentence(capsys, model: Path, tmp_path: Path) -> None:
    assert_refused(_compress(capsys, model, f"{tmp_path}/a\0b.sqz"), "NUL byte")


def test_file_too_large_is_one_sentence_and_leaves_nothing(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(ExportError, match="cannot write .*big.bin: file too large"):
            atomic_write_bytes(target, bytes(10_000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


def test_leftover_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".model.sqz.{int(dead.stdout)}.abc123{TEMP_SUFFIX}"
    live = tmp_path / f".model.sqz.{os.getppid()}.def456{TEMP_SUFFIX}"  # a running writer's: kept
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    atomic_write_bytes(tmp_path / "other.csv", b"a,b\n")
    assert not stale.exists() and live.exists()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def _start(model: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "squeezestudio.cli.main", "compress", str(model),
                             "--data", "none", "--prune", "0.5", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _kill_when(proc: subprocess.Popen, folder: Path, moment: str) -> None:
    deadline = time.monotonic() + 60
    if moment == "start-up":
        time.sleep(0.3)
    else:
        while time.monotonic() < deadline and proc.poll() is None and not _temporaries(folder):
            time.sleep(0.0005)
        if moment == "mid-write":
            time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def test_sigkill_during_compress_keeps_the_old_file_and_the_next_write_cleans_up(model: Path,
                                                                                tmp_path: Path) -> None:
    """Three `compress -o existing.sqz` runs side by side (one folder each), each killed at its moment."""
    old = hb.sqz_bytes()
    moments = ["start-up", "temporary created", "mid-write"]
    outs = {}
    for moment in moments:
        folder = tmp_path / moment.replace(" ", "_")
        folder.mkdir()
        outs[moment] = folder / "existing.sqz"
        outs[moment].write_bytes(old)
    procs = {moment: _start(model, out) for moment, out in outs.items()}
    killers = [threading.Thread(target=_kill_when, args=(procs[m], outs[m].parent, m)) for m in moments]
    for thread in killers:
        thread.start()
    for thread in killers:
        thread.join(120)
    for moment, out in outs.items():
        if out.read_bytes() != old:  # only possible when the kill came after the rename: a whole new file
            assert moment == "mid-write", f"the old file changed after a kill at {moment}"
            load_sqz(out, registry=default_registry())
    assert _temporaries(outs["temporary created"].parent), "the kill should have left a temporary file"
    for out in outs.values():
        atomic_write_bytes(out.parent / "next.csv", b"x\n")  # the next write to that folder
        assert _temporaries(out.parent) == []
    assert outs["start-up"].read_bytes() == old and outs["temporary created"].read_bytes() == old
