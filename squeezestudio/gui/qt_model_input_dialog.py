"""File > Model input…: the open model's input size and preprocessing, with a preview.

A classifier fed images prepared the wrong way scores near chance, and the
file often does not say how it was trained. The dialog shows every
preprocessing choice (the keys of ``--preprocess FILE.yaml``), previews one
sample image as the model will see it (through the core's own
``prepare_pixels``/``preprocess``, so the preview is what evaluation uses),
and says in one sentence what is wrong, with OK disabled, while the fields
contradict the model. Switching an ONNX file's layout shows the size the file
declares in that layout (the core's ``size_for_layout``). OK runs the model
once on the new input (the core's ``prepare_model_input``; for another ONNX
layout that converts the file again, seconds for a large model) in a worker,
with OK disabled meanwhile; the window then makes it current and measures the
original again (``apply_model_input``). Checking the fields as they are typed
runs no model (``probe=False``: parsing and a few comparisons), so it stays
on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QVBoxLayout, QWidget)

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.session.model_input import (channels_for_layout, prepare_model_input, size_for_layout,
                                                    use_model_input)
from squeezestudio.gui.qt_safe_text import set_plain_text
from squeezestudio.gui.qt_worker import JobManager

PREVIEW_SIZE = 160  # pixels on the longer side of the preview
RESIZE_MODES = (("cover", "Scale just enough to cover the input size"),
                ("shorter", "Scale the shorter side to N"),
                ("exact", "Resize to exactly H,W"))
ERROR_STYLE = "color: #c0392b;"
CHECK_JOB = "model_input"


def _numbers(values: Any) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def sample_image_path(session: Any) -> Optional[Path]:
    """The data set's first image file, else the first bundled sample (the digits have no files)."""
    from squeezestudio.core.io.demo_files import sample_images

    paths = getattr(session.data, "paths", None) if session.data is not None else None
    if paths:
        return Path(paths[0])
    samples = sample_images()
    return samples[0] if samples else None


def pixels_to_qimage(pixels: Any) -> QImage:
    """A uint8 ``(C, H, W)`` array (1 or 3 channels, in the order fed to the model) as a QImage copy."""
    import numpy as np

    channels, height, width = pixels.shape
    if channels == 1:
        data = np.ascontiguousarray(pixels[0])
        image = QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        data = np.ascontiguousarray(pixels[:3].transpose(1, 2, 0))
        image = QImage(data.data, width, height, width * 3, QImage.Format.Format_RGB888)
    return image.copy()  # detach from ``data``, which Python frees


class QtModelInputDialog(QDialog):
    """The preprocessing fields, a preview, one sentence when they are wrong; ``result_handle`` after OK."""

    def __init__(self, session: Any, sample: Optional[Path] = None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model input")
        self.session = session
        self.result_handle: Any = None  # the checked handle, set when OK succeeds
        self.error = ""
        self.jobs = JobManager(self, max_threads=1)  # OK's check; its failures are this dialog's sentence
        self.checking = False
        handle = session.handle
        spec = handle.input_spec
        self.input_size = QLineEdit(_numbers((spec.height, spec.width)))
        self.input_size.setToolTip("What the model sees: the center crop taken after resizing (H,W)")
        self.resize_mode = QComboBox()
        for key, text in RESIZE_MODES:
            self.resize_mode.addItem(text, key)
        self.resize_mode.setCurrentIndex(len(spec.resize))  # () cover, (n,) shorter side, (h, w) exact
        self.resize = QLineEdit(_numbers(spec.resize))
        self.resize.setPlaceholderText("N or H,W")
        self.resize.setMinimumWidth(90)
        self.pixel_scale = QComboBox()
        self.pixel_scale.addItem("0..1 (pixels / 255)", 1.0)
        self.pixel_scale.addItem("0..255", 255.0)
        self.pixel_scale.setCurrentIndex(0 if spec.pixel_scale == 1.0 else 1)
        self.mean = QLineEdit(_numbers(spec.mean))
        self.std = QLineEdit(_numbers(spec.std))
        self.order = QComboBox()
        self.order.addItems(["RGB", "BGR"])
        self.order.setCurrentIndex(1 if spec.channel_order == "bgr" else 0)
        self.header = QLabel()
        self._show_channels(spec.channels)
        self.grayscale = QCheckBox("Convert images to gray first")
        self.grayscale.setChecked(spec.grayscale)
        self.layout_box = QComboBox()
        self.layout_box.addItem("NCHW (channels first)", "nchw")
        self.layout_box.addItem("NHWC (channels last)", "nhwc")
        self.layout_box.setCurrentIndex(1 if spec.layout == "nhwc" else 0)
        onnx = handle.source_format == "onnx"
        self.layout_box.setEnabled(onnx)
        self.layout_box.setProperty("keep_disabled", not onnx)
        self.layout_box.setToolTip("The input layout of the ONNX file (read from its input shape when opened)"
                                   if onnx else "A PyTorch model's layout is its own code")
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.resize_mode, 1)
        resize_row.addWidget(self.resize)
        form = QFormLayout()
        form.addRow("Input size (center crop), H,W", self.input_size)
        form.addRow("Resize", resize_row)
        form.addRow("Pixel values", self.pixel_scale)
        form.addRow("Mean", self.mean)
        form.addRow("Std", self.std)
        form.addRow("Channel order", self.order)
        form.addRow("", self.grayscale)
        form.addRow("Layout", self.layout_box)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet(ERROR_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        side = QVBoxLayout()
        side.addWidget(QLabel("One sample as the model sees it"))
        side.addWidget(self.preview)
        side.addWidget(self.caption)
        side.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(form, 3)
        columns.addLayout(side, 2)
        outer = QVBoxLayout(self)
        outer.addWidget(self.header)
        outer.addLayout(columns)
        outer.addWidget(self.message)
        outer.addWidget(self.buttons)
        self.sample_path, self.sample = sample, self._load(sample)
        for edit in (self.input_size, self.resize, self.mean, self.std):
            edit.textChanged.connect(self.refresh)
        for box in (self.resize_mode, self.pixel_scale, self.order, self.layout_box):
            box.currentIndexChanged.connect(self.refresh)
        self.grayscale.toggled.connect(self.refresh)
        self.layout_box.currentIndexChanged.connect(self._layout_changed)
        self.refresh()

    def _show_channels(self, channels: int) -> None:
        """The header, the mean/std tooltips and the RGB/BGR choice for a model taking ``channels``."""
        self.header.setText(f"{printable_name(self.session.handle)} takes {channels} channel(s). Accuracy is "
                            "measured again with the new input.")
        for edit in (self.mean, self.std):
            edit.setToolTip(f"One value, or one per channel ({channels}); subtracted / divided after scaling")
        self.order.setEnabled(channels == 3)
        self.order.setProperty("keep_disabled", channels != 3)

    def _layout_changed(self) -> None:
        """Show the size and channels the ONNX file declares in the chosen layout (kept when it leaves them open)."""
        layout = self.layout_box.currentData()
        channels = channels_for_layout(self.session.handle, layout)
        if channels is not None:
            self._show_channels(channels)
        size = size_for_layout(self.session.handle, layout)
        if size is not None:
            self.input_size.setText(_numbers(size))  # textChanged: checked and previewed again

    @staticmethod
    def _load(sample: Optional[Path]) -> Any:
        from squeezestudio.core.data.images import load_image

        try:
            return load_image(sample) if sample is not None else None
        except (SqueezeStudioError, OSError, ValueError):
            return None  # no preview; the fields still work

    def raw(self) -> dict[str, Any]:
        """The fields as preprocessing options (keys of ``--preprocess FILE.yaml``)."""
        mode = self.resize_mode.currentData()
        return {"input_size": self.input_size.text(), "resize": "" if mode == "cover" else self.resize.text(),
                "mean": self.mean.text(), "std": self.std.text(), "pixel_scale": self.pixel_scale.currentData(),
                "bgr": self.order.currentIndex() == 1, "grayscale": self.grayscale.isChecked(),
                "layout": self.layout_box.currentData()}

    def refresh(self) -> None:
        """Check the fields (no model run) and redraw the preview; a sentence and OK disabled when wrong."""
        self.resize.setEnabled(self.resize_mode.currentData() != "cover")
        problem = self._resize_problem()
        trial = None
        if not problem:
            try:
                trial = prepare_model_input(self.session, self.raw(), probe=False)
            except SqueezeStudioError as exc:
                problem = str(exc)
        self._show_problem(problem)
        if trial is not None:
            self._draw_preview(trial.input_spec)

    def _resize_problem(self) -> str:
        mode, parts = self.resize_mode.currentData(), [p for p in self.resize.text().replace("x", ",").split(",")
                                                       if p.strip()]
        if mode == "shorter" and len(parts) != 1:
            return "Give one number for the shorter side, such as 256."
        if mode == "exact" and len(parts) != 2:
            return "Give the exact size as H,W, such as 256,256."
        return ""

    def _show_problem(self, problem: str) -> None:
        self.error = problem[:1].upper() + problem[1:] if problem else ""
        if self.error and not self.error.endswith("."):
            self.error += "."
        set_plain_text(self.message, self.error)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not self.error)

    def _draw_preview(self, spec: Any) -> None:
        if self.sample is None:
            self.preview.setText("(no sample image)")
            self.caption.setText("")
            return
        from squeezestudio.core.data.dataset import PreprocessSpec
        from squeezestudio.core.data.images import prepare_pixels, preprocess

        pre = PreprocessSpec.from_input_spec(spec)
        pixels = prepare_pixels(self.sample, pre)
        values = preprocess(self.sample, pre)
        image = pixels_to_qimage(pixels)
        small = image.width() < PREVIEW_SIZE and image.height() < PREVIEW_SIZE
        mode = Qt.TransformationMode.FastTransformation if small else Qt.TransformationMode.SmoothTransformation
        self.preview.setPixmap(QPixmap.fromImage(image.scaled(PREVIEW_SIZE, PREVIEW_SIZE,
                                                              Qt.AspectRatioMode.KeepAspectRatio, mode)))
        name = self.sample_path.name if self.sample_path is not None else "sample"
        order = ", red and blue swapped (BGR)" if pre.channel_order == "bgr" and pixels.shape[0] == 3 else ""
        set_plain_text(self.caption, f"{name}: {pixels.shape[0]}x{pixels.shape[1]}x{pixels.shape[2]}{order}; "
                                     f"values {float(values.min()):.2f} to {float(values.max()):.2f} "
                                     "after mean/std")

    def accept(self) -> None:
        """Run the model once on the new input in a worker; close when it takes it, else say why and stay."""
        self.refresh()
        if self.error or self.checking:
            return
        session, raw = self.session, self.raw()

        def job(progress: Any = None, cancel: Any = None) -> Any:
            return prepare_model_input(session, raw, probe=True)

        self._set_checking(True)
        self.jobs.start(CHECK_JOB, job, on_finished=self._checked, on_failed=self._check_failed,
                        on_cancelled=lambda: self._set_checking(False))

    def _set_checking(self, checking: bool) -> None:
        """While the model runs: OK and the fields disabled, a line saying what is happening."""
        self.checking = checking
        for widget in (self.input_size, self.resize_mode, self.resize, self.pixel_scale, self.mean, self.std,
                       self.order, self.grayscale, self.layout_box):
            widget.setEnabled(not checking and widget.property("keep_disabled") is not True)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not checking and not self.error)
        self.message.setStyleSheet("" if checking else ERROR_STYLE)
        set_plain_text(self.message, "Running the model once on the new input…" if checking else self.error)
        if not checking:
            self.resize.setEnabled(self.resize_mode.currentData() != "cover")

    def _checked(self, handle: Any) -> None:
        if not self.checking:
            return  # Cancel came first (the check had finished, its answer not yet delivered)
        self._set_checking(False)
        self.result_handle = handle
        super().accept()

    def _check_failed(self, message: str, details: str) -> None:
        self._set_checking(False)
        self._show_problem(message)

    def reject(self) -> None:
        """Cancel closes at once; a check still running is cancelled and its handle never used."""
        self.jobs.cancel(CHECK_JOB)
        self._set_checking(False)
        super().reject()


def printable_name(handle: Any) -> str:
    from squeezestudio.core.printable import printable

    return printable(getattr(handle, "name", "The model"), 60)


def open_model_input_dialog(window: Any) -> Optional[QtModelInputDialog]:
    """File > Model input…: run the dialog on the window's model and apply what OK checked."""
    session = window.session
    if session.handle is None:
        window.show_message("Open a model first (File > Open model, or drop a file on the window).")
        return None
    dialog = QtModelInputDialog(session, sample_image_path(session), window)
    window.model_input_dialog = dialog
    if window.exec_dialog(dialog) == QDialog.DialogCode.Accepted and dialog.result_handle is not None \
            and window.confirm_discard("measure again with the new input"):
        apply_model_input(window, dialog.result_handle)
    return dialog


def apply_model_input(window: Any, handle: Any) -> None:
    """Make ``handle`` the window's model: points dropped, data loaded again, the original measured again."""
    window.jobs.cancel()  # running evaluations were measuring the old input
    use_model_input(window.session, handle)
    window.runner.inspect()
    source = window.session.data_source
    again = f"; measuring the original again on {source}" if source else ""
    window.show_message(f"Model input: {handle.input_spec.describe()}{again}.")
    if source:
        window.runner.open_data(source)  # prepared for the new input; then the original is measured
