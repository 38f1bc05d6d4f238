"""The trust question defaults to "no"; the export dialog reports the exact bytes on disk."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from squeezestudio.core.atomic_write import atomic_write_bytes  # noqa: E402
from squeezestudio.core.errors import ExportError  # noqa: E402
from squeezestudio.gui.qt_export_dialog import EXPORT_FORMATS, QtExportDialog  # noqa: E402
from squeezestudio.gui.qt_trust_dialog import OPEN_ANYWAY, ask_trust, build_trust_box  # noqa: E402


def _when_modal(action):
    """Run ``action(box)`` on the message box once it is shown modally (the real ``exec`` path)."""
    tries = iter(range(500))

    def attempt():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.isVisible():
            action(box)
        elif next(tries, None) is not None:
            QTimer.singleShot(10, attempt)
    QTimer.singleShot(0, attempt)


@pytest.mark.parametrize("key", [Qt.Key.Key_Return, Qt.Key.Key_Escape])
def test_trust_defaults_to_no(qtbot, tmp_path, key):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"pickle")
    _when_modal(lambda box: QTest.keyClick(box, key))
    assert ask_trust(None, path, "This checkpoint is a pickle file") is False


def test_trust_is_yes_only_when_open_anyway_is_clicked(qtbot, tmp_path):
    path = tmp_path / "model.py"
    path.write_text("print('hi')")

    def click_open(box):
        [button] = [b for b in box.buttons() if b.text() == OPEN_ANYWAY]
        button.click()
    _when_modal(click_open)
    assert ask_trust(None, path, "This is a Python file") is True


def test_trust_box_explains_the_risk_and_defaults_to_cancel(qtbot, tmp_path):
    path = tmp_path / "scripted.pt"
    box = build_trust_box(None, path, "This is a TorchScript file, which contains compiled code.")
    qtbot.addWidget(box)
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    assert box.escapeButton() is box.button(QMessageBox.StandardButton.Cancel)
    assert "scripted.pt" in box.text()
    assert "TorchScript" in box.informativeText() and "someone you trust" in box.informativeText()
    assert ask_trust(None, path, "reason", exec_box=lambda b: None) is False  # closed without a choice


def _fake_exporter(calls, lie_about=None, fail_on=None):
    """Writes ``100 + 37 * i`` bytes for the i-th call; optionally misreports or fails one format."""
    def on_export(fmt, path):
        calls.append((fmt, path))
        if fmt == fail_on:
            raise ExportError(f"cannot write {path.name}: disk full")
        written = atomic_write_bytes(path, bytes(100 + 37 * len(calls)))
        return written + 1 if fmt == lie_about else written
    return on_export


def test_export_writes_each_format_and_shows_bytes_on_disk(qtbot, tmp_path):
    calls = []
    formats = ["sqz", "onnx", "report_json"]
    dialog = QtExportDialog(None, formats, _fake_exporter(calls), folder=tmp_path, base_name="digits_small")
    qtbot.addWidget(dialog)
    assert dialog.selected_formats() == formats
    outcomes = dialog.export_now()
    assert [fmt for fmt, _ in calls] == formats
    assert [p.name for _, p in calls] == ["digits_small.sqz", "digits_small.onnx", "digits_small.report.json"]
    for row, outcome in enumerate(outcomes):
        size = os.path.getsize(outcome.path)
        assert outcome.ok and outcome.disk_bytes == outcome.reported_bytes == size
        assert dialog.table.item(row, 1).text() == f"{size:,}"
        assert dialog.table.item(row, 0).text() == outcome.path.name
    total = sum(os.path.getsize(o.path) for o in outcomes)
    assert f"{total:,} bytes in total" in dialog.status_label.text()


def test_export_flags_a_wrong_size_and_a_failure_without_stopping(qtbot, tmp_path):
    calls = []
    dialog = QtExportDialog(None, list(EXPORT_FORMATS), _fake_exporter(calls, lie_about="pt", fail_on="onnx"),
                            folder=tmp_path)
    qtbot.addWidget(dialog)
    dialog.set_selected_formats(["pt", "onnx", "recipe"])
    results = {o.fmt: o for o in dialog.export_now()}
    assert not results["pt"].ok and results["pt"].disk_bytes == os.path.getsize(tmp_path / "model.pt")
    assert "reported" in results["pt"].status()
    assert results["onnx"].error == "cannot write model.onnx: disk full"
    assert not (tmp_path / "model.onnx").exists()
    assert results["recipe"].ok and (tmp_path / "model.recipe.yaml").is_file()
    statuses = [dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())]
    assert statuses[1].startswith("Failed") and statuses[2] == "Written and checked on disk"
    assert "2 export(s) need attention" in dialog.status_label.text()


def test_export_refuses_a_missing_folder_or_bad_name(qtbot, tmp_path):
    calls = []
    dialog = QtExportDialog(None, ["sqz"], _fake_exporter(calls), folder=tmp_path / "missing")
    qtbot.addWidget(dialog)
    assert not dialog.export_button.isEnabled()
    assert dialog.export_now() == [] and calls == []
    assert "does not exist" in dialog.status_label.text()
    dialog.set_folder(tmp_path)
    dialog.set_base_name("a/b")
    assert dialog.export_now() == [] and "plain file name" in dialog.status_label.text()
    dialog.set_base_name("ok")
    assert dialog.export_button.isEnabled() and len(dialog.export_now()) == 1


def test_the_export_dialog_offers_the_cores_formats_and_file_endings(tmp_path):
    from squeezestudio.core.io import export_formats
    from squeezestudio.gui import qt_export_dialog

    assert qt_export_dialog.EXPORT_FORMATS is export_formats.EXPORT_FORMATS
    for key in export_formats.EXPORT_FORMATS:
        assert qt_export_dialog.output_path(tmp_path, "m", key) == export_formats.output_path(tmp_path, "m", key)
