"""The export dialog: pick formats and a destination, then see exactly what was written.

Compression is about bytes, so after exporting the dialog lists every file
with its exact size, as returned by the exporter *and* checked on disk; a
difference is flagged instead of hidden. The exporting itself is a callback
(``on_export(fmt, path) -> bytes written``) that the main window wires to the
core's exporters, so this dialog never needs to know how a format is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox,
    QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget)

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.io.export_formats import EXPORT_FORMATS, ExportFormat

ExportFn = Callable[[str, Path], int]


_BAD_NAME_CHARS = set('/\\:*?"<>|\0')


def format_info(fmt: str) -> ExportFormat:
    """The core's description of ``fmt``; any other name is offered as ``name`` with the ending ``.name``."""
    return EXPORT_FORMATS.get(fmt, ExportFormat(fmt, fmt, f".{fmt}"))


def output_path(folder: Path, base_name: str, fmt: str) -> Path:
    """Where ``fmt`` goes for this folder and base name (``model`` + ``.sqz`` ...)."""
    return Path(folder) / f"{base_name}{format_info(fmt).suffix}"


@dataclass(frozen=True)
class ExportOutcome:
    """One file's result: the size the exporter reported and the size found on disk, or the error."""

    fmt: str
    path: Path
    reported_bytes: Optional[int] = None
    disk_bytes: Optional[int] = None
    error: Optional[str] = None
    shown_bytes: Optional[int] = None  # the size the window showed for this file beforehand, if any

    @property
    def ok(self) -> bool:
        return (self.error is None and self.disk_bytes is not None and self.reported_bytes == self.disk_bytes
                and (self.shown_bytes is None or self.shown_bytes == self.disk_bytes))

    def status(self) -> str:
        if self.error is not None:
            return f"Failed: {self.error}"
        if self.disk_bytes is None:
            return "Failed: the exporter reported success but no file is there"
        if self.reported_bytes != self.disk_bytes:
            return f"Size differs: the exporter reported {self.reported_bytes:,} bytes"
        if self.shown_bytes is not None and self.shown_bytes != self.disk_bytes:
            return f"Size differs from the {self.shown_bytes:,} bytes shown on the plot"
        if self.shown_bytes is not None:
            return "Written; same size as shown on the plot"
        return "Written and checked on disk"


class QtExportDialog(QDialog):
    """Choose formats, folder and base name; export each format and list the bytes written."""

    exported = Signal(list)
    """Emitted with the list of :class:`ExportOutcome` after each export run."""

    def __init__(self, parent: Optional[QWidget], formats: Sequence[str], on_export: ExportFn, *,
                 folder: Optional[Path] = None, base_name: str = "model",
                 expected: Optional[dict[str, int]] = None, notes: Optional[dict[str, str]] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._on_export = on_export
        self._expected = dict(expected or {})
        self.outcomes: list[ExportOutcome] = []
        layout = QVBoxLayout(self)
        box = QGroupBox("Formats")
        box_layout = QVBoxLayout(box)
        self.checks: dict[str, QCheckBox] = {}
        for fmt in formats:
            note = (notes or {}).get(fmt)
            check = QCheckBox(format_info(fmt).label + (f" — {note}" if note else ""))
            check.setToolTip(note or "")
            check.setChecked(True)
            check.toggled.connect(self._update_preview)
            self.checks[fmt] = check
            box_layout.addWidget(check)
        layout.addWidget(box)
        form = QFormLayout()
        self.folder_edit = QLineEdit(str(folder or Path.home()))
        self.folder_edit.textChanged.connect(self._update_preview)
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder:", row)
        self.name_edit = QLineEdit(base_name)
        self.name_edit.textChanged.connect(self._update_preview)
        form.addRow("Base name:", self.name_edit)
        layout.addLayout(form)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["File", "Bytes", "Status"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setMinimumHeight((len(formats) + 1) * (self.fontMetrics().height() + 8) + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.status_label = QLabel()
        self.status_label.setObjectName("exportStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.export_now)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 520)
        self._update_preview()

    # --- public API ---------------------------------------------------------
    def selected_formats(self) -> list[str]:
        return [fmt for fmt, check in self.checks.items() if check.isChecked()]

    def set_selected_formats(self, formats: Sequence[str]) -> None:
        for fmt, check in self.checks.items():
            check.setChecked(fmt in formats)

    def folder(self) -> Path:
        return Path(self.folder_edit.text().strip()).expanduser()

    def set_folder(self, folder: Path | str) -> None:
        self.folder_edit.setText(str(folder))

    def base_name(self) -> str:
        return self.name_edit.text().strip()

    def set_base_name(self, name: str) -> None:
        self.name_edit.setText(name)

    def planned_paths(self) -> dict[str, Path]:
        """The file each selected format will be written to."""
        return {fmt: output_path(self.folder(), self.base_name(), fmt) for fmt in self.selected_formats()}

    def problem(self) -> Optional[str]:
        """Why exporting cannot start now (one sentence), or None."""
        if not self.selected_formats():
            return "Choose at least one format to export."
        name = self.base_name()
        if not name or name in (".", "..") or any(c in _BAD_NAME_CHARS for c in name):
            return "The base name must be a plain file name without / \\ : * ? \" < > |."
        if not self.folder().is_dir():
            return f"The folder {self.folder()} does not exist; choose an existing folder."
        return None

    def export_now(self) -> list[ExportOutcome]:
        """Export every selected format in turn; one failure does not stop the others."""
        problem = self.problem()
        if problem is not None:
            self._set_status(problem, error=True)
            return []
        self.outcomes = [self._export_one(fmt, path) for fmt, path in self.planned_paths().items()]
        self._show_outcomes()
        self.exported.emit(list(self.outcomes))
        return list(self.outcomes)

    # --- internals ------------------------------------------------------------
    def _export_one(self, fmt: str, path: Path) -> ExportOutcome:
        try:
            reported = int(self._on_export(fmt, path))
        except SqueezeStudioError as exc:
            return ExportOutcome(fmt, path, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - an exporter bug is shown, not a crash
            return ExportOutcome(fmt, path, error=f"{exc.__class__.__name__}: {exc}")
        disk = os.path.getsize(path) if path.is_file() else None
        return ExportOutcome(fmt, path, reported_bytes=reported, disk_bytes=disk,
                             shown_bytes=self._expected.get(fmt))

    def _show_outcomes(self) -> None:
        self._fill_table([(o.path, "" if o.disk_bytes is None else f"{o.disk_bytes:,}", o.status())
                          for o in self.outcomes])
        good = [o for o in self.outcomes if o.ok]
        total = sum(o.disk_bytes or 0 for o in good)
        failed = len(self.outcomes) - len(good)
        text = f"{len(good)} file(s) written, {total:,} bytes in total."
        if failed:
            text += f" {failed} export(s) need attention (see the table)."
        self._set_status(text, error=bool(failed))

    def _update_preview(self) -> None:
        rows = []
        for path in self.planned_paths().values():
            rows.append((path, "", "Will replace the existing file" if path.exists() else "To be written"))
        self._fill_table(rows)
        problem = self.problem()
        self._set_status(problem or "", error=problem is not None)
        self.export_button.setEnabled(problem is None)

    def _fill_table(self, rows: Sequence[tuple[Path, str, str]]) -> None:
        self.table.setRowCount(len(rows))
        for i, (path, size, status) in enumerate(rows):
            name = QTableWidgetItem(path.name)
            name.setToolTip(str(path))
            self.table.setItem(i, 0, name)
            size_item = QTableWidgetItem(size)
            size_item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(i, 1, size_item)
            self.table.setItem(i, 2, QTableWidgetItem(status))

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export to folder", str(self.folder()))
        if chosen:
            self.set_folder(chosen)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color:#b00020;" if error else "")
