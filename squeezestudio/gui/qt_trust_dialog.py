"""Ask the user before opening a model file that can run code.

Pickled checkpoints, TorchScript archives and Python model files are programs
as much as data: opening one can do anything the user can do. The core refuses
them unless the caller says the user trusts the file; this dialog is how the
GUI asks. Cancel is the default button, so pressing Enter (or Escape) never
opens an untrusted file by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Union

from PySide6.QtWidgets import QMessageBox, QWidget

PathLike = Union[str, "os.PathLike[str]"]

ExecFn = Callable[[QMessageBox], object]
"""Runs the box and returns when it is closed (``QMessageBox.exec`` by default; tests inject another)."""

OPEN_ANYWAY = "Open anyway"


def build_trust_box(parent: Optional[QWidget], path: PathLike, reason: str) -> QMessageBox:
    """The warning box for ``path``: what the risk is, why this file has it, Cancel as default."""
    p = Path(path)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Open a file that can run code?")
    box.setText(f"\u201c{p.name}\u201d can run programs on this computer when it is opened.")
    box.setInformativeText(
        f"{reason.strip().rstrip('.')}. Files like this (pickled checkpoints, TorchScript, Python model "
        "files) can read, change or delete your files, just like any program you run.\n\n"
        "Open it only if it comes from someone you trust. If you are unsure, ask for a "
        ".safetensors or ONNX version instead, which cannot run code.")
    box.setDetailedText(str(p.resolve()))
    box.addButton(OPEN_ANYWAY, QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    return box


def ask_trust(parent: Optional[QWidget], path: PathLike, reason: str,
              exec_box: Optional[ExecFn] = None) -> bool:
    """True only when the user explicitly chose "Open anyway" for ``path``.

    ``reason`` says in plain words why this file can run code (e.g. "This is a
    TorchScript file, which contains compiled Python code"). Closing the box in
    any other way (Cancel, Escape, Enter, the window's close button) is a no.
    """
    box = build_trust_box(parent, path, reason)
    try:
        (exec_box or QMessageBox.exec)(box)
        clicked = box.clickedButton()
        return clicked is not None and clicked.text() == OPEN_ANYWAY
    finally:
        box.deleteLater()
