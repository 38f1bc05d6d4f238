"""``squeezestudio MODEL`` opens the app on MODEL; ``gui`` takes eval's preprocessing and label flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from squeezestudio.cli.main import build_parser, command_names, main, with_gui_command
from squeezestudio.core.io.demo_files import demo_model_path

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(demo_model_path())


@pytest.fixture
def opened(monkeypatch):
    """What main() asks the GUI to open, recorded instead of a window that would block the test."""
    from squeezestudio.gui import app

    calls: list[dict] = []

    def record(model_path=None, data=None, *, trust=False, argv=None, load_options=None):
        calls.append({"model": model_path, "data": data, "trust": trust, "options": load_options})
        return 0

    monkeypatch.setattr(app, "run_gui", record)
    return calls


def test_a_bare_model_path_becomes_the_gui_command():
    commands = command_names(build_parser())
    assert {"eval", "gui", "compress", "demo"} <= commands
    assert with_gui_command(["m.onnx"], commands) == ["gui", "m.onnx"]
    assert with_gui_command(["--limit", "input_elements=9", "m.onnx", "--mean", "0.5"], commands) == \
        ["--limit", "input_elements=9", "gui", "m.onnx", "--mean", "0.5"]
    assert with_gui_command(["eval", "m.onnx"], commands) == ["eval", "m.onnx"]
    assert with_gui_command(["--version"], commands) == ["--version"]
    assert with_gui_command([], commands) == []


def test_squeezestudio_model_opens_the_app_on_it_with_the_flags(opened, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    assert main([DEMO, "--mean", "0.4", "--std", "0.3", "--labels", str(labels), "--data", "digits"]) == 0
    (call,) = opened
    assert call["model"] == DEMO and call["data"] == "digits"
    assert call["options"]["preprocess"] == {"mean": (0.4,), "std": (0.3,)}
    assert call["options"]["class_names"][9] == "digit 9"
    assert main(["gui", DEMO]) == 0 and opened[1]["model"] == DEMO and opened[1]["options"] == {}


def test_a_file_named_like_a_command_is_still_reachable_through_gui(opened, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("inspect").write_bytes(Path(DEMO).read_bytes())
    assert main(["gui", "inspect"]) == 0 and opened[0]["model"] == "inspect"


def test_bare_squeezestudio_still_opens_the_demo(opened):
    assert main([]) == 0 and opened[0]["model"] is None and opened[0]["options"] == {}


def test_bad_gui_flags_fail_before_any_window(opened, capsys, tmp_path):
    assert main([DEMO, "--crop", "abc"]) == 2
    assert "crop must be whole numbers" in capsys.readouterr().err
    bad_labels = tmp_path / "labels.json"
    bad_labels.write_text("[\"cat\", ")
    assert main(["gui", DEMO, "--labels", str(bad_labels)]) == 2
    assert "not a valid JSON list" in capsys.readouterr().err
    assert main(["gui", "--mean", "0.5"]) == 2
    assert "need a MODEL" in capsys.readouterr().err
    assert opened == []


def test_a_missing_model_is_one_sentence_and_exit_code_2():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "squeezestudio.cli.main", "nonexistent.onnx"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: there is no model file nonexistent.onnx (and no command of that name; "
                     "see squeezestudio --help)"]


def test_studio_script_opens_the_window_branch_when_given_a_model():
    """scripts/studio falls back to the command-line demo only without arguments and without a display."""
    script = (ROOT / "scripts" / "studio").read_text()
    fallback = next(line for line in script.splitlines() if "exec .venv/bin/squeezestudio demo" in line or
                    line.startswith("if ") and "DISPLAY" in line)
    assert "[ $# -eq 0 ]" in fallback
    assert script.rstrip().endswith('exec .venv/bin/squeezestudio "$@"')
