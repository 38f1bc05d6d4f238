"""The main window's file commands: open, save and recover projects, export, dialogs.

A mixin of :class:`~squeezestudio.gui.qt_main_window.QtMainWindow` (kept
apart so each file stays small); it uses the window's ``session``,
``runner``, ``settings`` and status-bar methods.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from squeezestudio import __version__
from squeezestudio.core.session.project_files import find_autosave
from squeezestudio.gui.qt_export_dialog import QtExportDialog
from squeezestudio.gui.qt_autosave_bar import QtAutosaveBar, needs_offer
from squeezestudio.gui.qt_worker import describe_error

PROJECT_FILTER = "SqueezeStudio project (*.sqproj);;All files (*)"
MODEL_FILTER = "Models (*.safetensors *.pt *.pth *.bin *.onnx *.sqz *.ts *.pkl *.py);;All files (*)"


class WindowFileActions:
    """File menu commands (mixed into the main window)."""

    session: Any
    runner: Any
    settings: Any
    plot: Any

    def ask_open_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self._start_folder(), MODEL_FILTER)
        if path:
            self.open_model(path)

    def ask_model_input(self) -> None:
        """File > Model input…: the model's preprocessing, previewed; OK measures the original again."""
        from squeezestudio.gui.qt_model_input_dialog import open_model_input_dialog

        open_model_input_dialog(self)

    def ask_open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open image folder (one sub-folder per class)",
                                                self._start_folder())
        if path:
            self.open_data(path)

    def ask_open_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open CSV list", self._start_folder(), "CSV (*.csv)")
        if path:
            self.open_data(path)

    def ask_open_training_data(self) -> None:
        """Retraining needs labelled data other than the evaluation set."""
        self.controls.retraining.ask_training_data()

    def ask_open_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", self._start_folder(), PROJECT_FILTER)
        if path:
            self.open_project(path)

    def open_project(self, path: str) -> None:
        if not self.confirm_discard("open the project"):
            return
        try:
            self.session.open_project(path)
        except Exception as exc:  # noqa: BLE001
            self.show_error(*describe_error(exc))
            return
        self._remember(path)
        self.runner.inspect()
        self.point_status.refresh()
        stored = len(self.session.points.ids())
        self.show_message(f"Opened project {path} with {len(self.session.experiments)} result(s), "
                          f"{stored} with their stored model.")

    def save_project(self) -> None:
        if self.session.project_path is None:
            self.ask_save_project()
        else:
            self._save_to(str(self.session.project_path))

    def ask_save_project(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save project", self._start_folder(), PROJECT_FILTER)
        if path:
            self._save_to(path if Path(path).suffix else path + ".sqproj")

    def _save_to(self, path: str) -> None:
        try:
            written = self.session.save_project(path)
        except Exception as exc:  # noqa: BLE001
            self.show_error(*describe_error(exc))
            return
        self._remember(path)
        self.show_message(f"Saved {path} ({written:,} bytes).")

    def autosave(self) -> None:
        if self.session.handle is not None and len(self.session.experiments):
            try:
                self.session.autosave()
            except Exception as exc:  # noqa: BLE001 - autosave must never interrupt work
                self.show_message(f"Autosave failed: {exc}")

    def recover_autosave(self) -> None:
        info = find_autosave()
        if info is None:
            self.show_message("There is no autosave to recover.")
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.timestamp))
        answer = QMessageBox.question(self, "Recover autosave", f"Reopen the work autosaved on {when}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.session.restore_autosave(info)
            self.runner.inspect()

    def offer_autosave(self, folder: Any = None) -> Any:
        """Show the non-modal restore bar when an autosave is newer than the last clean exit."""
        info = find_autosave(folder)
        if not needs_offer(info, self.settings.last_clean_exit()):
            return None
        if self.autosave_bar is not None:
            self.autosave_bar.deleteLater()
        self.autosave_bar = QtAutosaveBar(info, self._restore_autosave, self._discard_autosave)
        self.central_layout.insertWidget(0, self.autosave_bar)
        self.autosave_bar.show()  # a child added to a visible window stays hidden otherwise
        return self.autosave_bar

    def _restore_autosave(self, info: Any) -> None:
        self.autosave_bar = None
        self.jobs.cancel()
        try:
            self.session.restore_autosave(info)
        except Exception as exc:  # noqa: BLE001 - a broken autosave is a message
            self.show_error(*describe_error(exc))
            return
        self.runner.inspect()
        self.show_message(f"Restored the autosave with {len(self.session.experiments)} result(s).")

    def _discard_autosave(self, info: Any) -> None:
        self.autosave_bar = None
        self.settings.set_clean_exit(time.time())  # answered: do not ask again for this autosave
        self.show_message("The autosave was left unopened (File > Recover autosave still opens it).")

    def ask_export(self) -> None:
        """Export the highlighted point's exact stored model (rebuilt first when it is recipe-only)."""
        current = self.plot.current_id if self.plot is not None else None
        experiment = self.session.experiments.find(current or "")
        if experiment is None or experiment.is_original:
            experiment = self.session.latest_compressed() if experiment is None else None
        if experiment is None or experiment.is_original:
            self.show_message("Click a compressed point (or evaluate one) first: export writes that point's model.")
            return
        if self.session.has_point_model(experiment):
            self._open_export_dialog(experiment)
            return
        self.show_message(f"{experiment.label}: rebuilding its model from its recipe before the export…")
        self.jobs.start("inspect", lambda progress=None, cancel=None: self.session.point_model(
            experiment, progress=progress, cancel=cancel), on_finished=lambda _: self._open_export_dialog(experiment))

    def _open_export_dialog(self, experiment: Any) -> None:
        # lazy: the export writers import torch; the window is built before it loads
        from squeezestudio.gui.qt_export_wiring import FORMATS, dense_notes, expected_sizes, export_one
        from squeezestudio.gui.qt_point_store_status import point_caption

        session = self.session
        session.points.pin(experiment)  # an exported point keeps its file
        dialog = QtExportDialog(self, FORMATS, lambda fmt, path: export_one(
                                    session, experiment, fmt, path, calibration=session.calibration_images),
                                folder=Path(self._start_folder()),
                                base_name=f"{getattr(self.session.handle, 'name', 'model')}_compressed",
                                expected=expected_sizes(experiment), notes=dense_notes(session, experiment))
        dialog.setWindowTitle(f"Export {point_caption(session, experiment)}")
        self.export_dialog = dialog
        self.exec_dialog(dialog)

    def exec_dialog(self, dialog: Any) -> Any:
        """Run a modal dialog (tests replace this to answer it)."""
        return dialog.exec()

    def show_about(self) -> None:
        QMessageBox.about(self, "About SqueezeStudio",
                          f"SqueezeStudio {__version__}\nMake image classifiers smaller and see "
                          "the true size against the measured accuracy.")

    def _start_folder(self) -> str:
        """The folder the user last used: never the app's own folder (the bundled demo lives there)."""
        import squeezestudio

        app_root = Path(squeezestudio.__file__).resolve().parent.parent
        for recent in self.settings.recent_files():
            folder = Path(recent).resolve().parent
            if folder.is_dir() and not folder.is_relative_to(app_root):
                return str(folder)
        return str(Path.home())
