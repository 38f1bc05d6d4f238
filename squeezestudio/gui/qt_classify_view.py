"""The classify view: drop images, see each model's top-5 side by side.

This is where a user checks with their own eyes that the compressed model
still answers like the original. Each dropped file becomes a row: thumbnail,
file name, an agree/disagree badge, and one column of probability bars per
model. Classification runs on a worker thread (the core's
:func:`classify_files`), so dropping a hundred photos never freezes the window;
a file that is not an image shows its one-sentence error instead of a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy,
    QVBoxLayout, QWidget)
from torch import nn

from squeezestudio.core.measure.classify import ImageClassification, Prediction, classify_files
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.printable import printable
from squeezestudio.gui.qt_safe_text import plain_label
from squeezestudio.gui.qt_images import (
    THUMBNAIL_SIZE, ask_image_files, display_name, has_local_files, paths_from_mime, thumbnail_image,
    unique_paths)

_TOP_COLOR = QColor("#2f7ed8")
_OTHER_COLOR = QColor("#9fbfe3")
_AGREE_STYLE = "background:#d9f2dc; color:#1e6b2a; border-radius:4px; padding:2px 8px; font-weight:bold;"
_DISAGREE_STYLE = "background:#fde2c8; color:#9a4a00; border-radius:4px; padding:2px 8px; font-weight:bold;"
_HINT = "Drop image files or folders here, or click \u201cAdd images\u2026\u201d."


class _ProbabilityBar(QWidget):
    """A horizontal bar filled to a probability, with the percentage written on it."""

    def __init__(self, probability: float, highlight: bool, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.probability = max(0.0, min(1.0, probability))
        self._color = _TOP_COLOR if highlight else _OTHER_COLOR
        self.setMinimumSize(90, 16)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(self.text())

    def text(self) -> str:
        return f"{100.0 * self.probability:.1f}%"

    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        text_width = painter.fontMetrics().horizontalAdvance("100.0%") + 8
        bar = self.rect().adjusted(0, 2, -text_width, -2)
        painter.fillRect(bar, self.palette().color(QPalette.ColorRole.AlternateBase))
        painter.fillRect(bar.adjusted(0, 0, -round(bar.width() * (1.0 - self.probability)), 0), self._color)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(self.rect().adjusted(bar.width(), 0, 0, 0),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self.text())
        painter.end()


class _ModelColumn(QGroupBox):
    """One model's top-k for one image: class names beside probability bars."""

    def __init__(self, model_name: str, predictions: Sequence[Prediction], parent: Optional[QWidget] = None):
        super().__init__(printable(model_name), parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        grid.setVerticalSpacing(2)
        self.predictions = list(predictions)
        for row, pred in enumerate(self.predictions):
            name = plain_label(pred.class_name)
            name.setMinimumWidth(60)
            if row == 0:
                font = name.font()
                font.setBold(True)
                name.setFont(font)
            grid.addWidget(name, row, 0)
            grid.addWidget(_ProbabilityBar(pred.probability, highlight=row == 0), row, 1)
        grid.setColumnStretch(1, 1)


class QtClassificationRow(QFrame):
    """One file's result: thumbnail, name, agreement badge and a column per model (or its error)."""

    def __init__(self, result: ImageClassification, thumbnail: Optional[QImage],
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.result = result
        self.setFrameShape(QFrame.Shape.StyledPanel)
        outer = QHBoxLayout(self)
        thumb = QLabel()
        thumb.setFixedSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if thumbnail is not None and not thumbnail.isNull():
            thumb.setPixmap(QPixmap.fromImage(thumbnail))
        else:
            thumb.setText("no preview")
            thumb.setStyleSheet("color:#888; border:1px dashed #bbb;")
        outer.addWidget(thumb, 0, Qt.AlignmentFlag.AlignTop)
        body = QVBoxLayout()
        header = QHBoxLayout()
        title = QLabel(display_name(result.path))
        title.setToolTip(result.path)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        header.addWidget(title)
        self.badge = QLabel(self._badge_text())
        self.badge.setObjectName("agreementBadge")
        self.badge.setVisible(bool(self.badge.text()))
        self.badge.setStyleSheet(_AGREE_STYLE if result.agree else _DISAGREE_STYLE)
        header.addWidget(self.badge)
        header.addStretch(1)
        body.addLayout(header)
        self.error_label: Optional[QLabel] = None
        self.columns: dict[str, _ModelColumn] = {}
        if result.error is not None:
            self.error_label = QLabel(result.error)
            self.error_label.setObjectName("errorText")
            self.error_label.setWordWrap(True)
            self.error_label.setStyleSheet("color:#b00020;")
            body.addWidget(self.error_label)
        else:
            columns = QHBoxLayout()
            for model_name, preds in result.top.items():
                self.columns[model_name] = _ModelColumn(model_name, preds)
                columns.addWidget(self.columns[model_name], 1)
            body.addLayout(columns)
        body.addStretch(1)
        outer.addLayout(body, 1)

    def _badge_text(self) -> str:
        if self.result.agree is None:
            return ""
        return "Same top class" if self.result.agree else "Different top class"


class _TaskSignals(QObject):
    """Carries a worker's answer back to the GUI thread (queued, since it is emitted off-thread)."""

    finished = Signal(int, object)  # generation, list[tuple[ImageClassification, QImage | None]]
    failed = Signal(int, str)


class _ClassifyTask(QRunnable):
    """Classify files and build their thumbnails off the GUI thread."""

    def __init__(self, generation: int, paths: list[Path], models: dict[str, nn.Module],
                 spec: PreprocessSpec, class_names: list[str], k: int, signals: _TaskSignals) -> None:
        super().__init__()
        self._args = (generation, paths, models, spec, class_names, k)
        self._signals = signals

    def run(self) -> None:
        generation, paths, models, spec, class_names, k = self._args
        try:
            results = classify_files(paths, models, spec, class_names, k)
            rows = [(r, thumbnail_image(r.path) if r.ok else None) for r in results]
        except SqueezeStudioError as exc:
            self._signals.failed.emit(generation, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user instead of killing the thread
            self._signals.failed.emit(generation, f"classification failed ({exc.__class__.__name__}: {exc})")
            return
        self._signals.finished.emit(generation, rows)


class QtClassifyView(QWidget):
    """Drop images, get every model's top-k side by side with an agreement badge.

    ``set_models`` gives the models to compare (e.g. ``{"original": m1,
    "compressed": m2}``) with their preprocessing and class names; the images
    already shown are classified again with the new models.
    """

    results_shown = Signal()
    """Emitted on the GUI thread once a batch's rows are on screen."""

    def __init__(self, parent: Optional[QWidget] = None, k: int = 5) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)  # created first, so it is destroyed (and drained) first
        self._pool.setMaxThreadCount(1)
        self._signals = _TaskSignals(self)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._k = k
        self._models: dict[str, nn.Module] = {}
        self._spec: Optional[PreprocessSpec] = None
        self._class_names: list[str] = []
        self._paths: list[Path] = []
        self._rows: list[QtClassificationRow] = []
        self._generation = 0
        self._pending = 0
        self.setAcceptDrops(True)
        self._build()

    # --- public API ---------------------------------------------------------
    def set_models(self, models: Mapping[str, nn.Module], preprocess_spec: PreprocessSpec,
                   class_names: Sequence[str]) -> None:
        """Compare these models from now on, and re-classify the images already shown."""
        self._models = dict(models)
        self._spec = preprocess_spec
        self._class_names = list(class_names)
        paths = list(self._paths)
        self._reset_rows()
        if paths:
            self._submit(paths)
        else:
            self._set_status("Ready: drop images to classify them." if self._models else "")

    def add_images(self, paths: Sequence[Path | str]) -> None:
        """Classify more files (folders are not expanded here; see :func:`paths_from_mime`)."""
        new = [p for p in unique_paths([Path(p) for p in paths]) if p not in self._paths]
        if not new:
            return
        self._paths.extend(new)
        if not self._models or self._spec is None:
            self._set_status(f"{len(self._paths)} image(s) waiting: load a model to classify them.")
            return
        self._submit(new)

    def clear(self) -> None:
        """Forget every image and result (results still being computed are dropped)."""
        self._paths = []
        self._reset_rows()
        self._set_status("")

    def results(self) -> list[ImageClassification]:
        """The results on screen, in the order shown."""
        return [row.result for row in self._rows]

    def rows(self) -> list[QtClassificationRow]:
        return list(self._rows)

    def is_busy(self) -> bool:
        return self._pending > 0

    def wait_until_idle(self, msecs: int = -1) -> bool:
        """Block until the worker has finished (for shutdown and scripts)."""
        return self._pool.waitForDone(msecs)

    # --- drag and drop --------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if has_local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if has_local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = paths_from_mime(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_images(paths)

    def closeEvent(self, event: object) -> None:  # noqa: N802
        self._generation += 1  # results still arriving are dropped
        self._pool.waitForDone(5000)
        super().closeEvent(event)  # type: ignore[arg-type]

    # --- internals ------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.add_button = QPushButton("Add images\u2026")
        self.add_button.clicked.connect(self._ask_files)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.status_label = QLabel("")
        self.status_label.setObjectName("classifyStatus")
        self.status_label.setWordWrap(True)
        bar.addWidget(self.add_button)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.status_label, 1)
        layout.addLayout(bar)
        self.hint_label = QLabel(_HINT)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setStyleSheet("color:#777; border:2px dashed #bbb; border-radius:8px; padding:24px;")
        layout.addWidget(self.hint_label, 1)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        container = QWidget()
        self._rows_layout = QVBoxLayout(container)
        self._rows_layout.addStretch(1)
        self._scroll.setWidget(container)
        self._scroll.setVisible(False)
        layout.addWidget(self._scroll, 1)

    def _ask_files(self) -> None:
        self.add_images(ask_image_files(self))

    def _submit(self, paths: list[Path]) -> None:
        assert self._spec is not None
        self._pending += 1
        self._set_status(f"Classifying {len(paths)} image(s)\u2026")
        task = _ClassifyTask(self._generation, paths, dict(self._models), self._spec,
                             list(self._class_names), self._k, self._signals)
        self._pool.start(task)

    def _on_finished(self, generation: int, rows: list) -> None:
        if generation != self._generation:
            return
        self._pending = max(0, self._pending - 1)
        for result, thumbnail in rows:
            row = QtClassificationRow(result, thumbnail)
            self._rows_layout.insertWidget(self._rows_layout.count() - 1, row)
            self._rows.append(row)
        self._show_rows(bool(self._rows))
        if not self.is_busy():
            self._set_status(self._summary())
        self.results_shown.emit()

    def _on_failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self._pending = max(0, self._pending - 1)
        self._set_status(message, error=True)
        self.results_shown.emit()

    def _reset_rows(self) -> None:
        self._generation += 1
        self._pending = 0
        for row in self._rows:
            row.setParent(None)
            row.deleteLater()
        self._rows = []
        self._show_rows(False)

    def _show_rows(self, visible: bool) -> None:
        self._scroll.setVisible(visible)
        self.hint_label.setVisible(not visible)

    def _summary(self) -> str:
        results = self.results()
        failed = sum(1 for r in results if not r.ok)
        compared = [r for r in results if r.agree is not None]
        parts = [f"{len(results) - failed} image(s) classified"]
        if compared:
            parts.append(f"models agree on {sum(1 for r in compared if r.agree)} of {len(compared)}")
        if failed:
            parts.append(f"{failed} file(s) could not be read")
        return "; ".join(parts) + "."

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color:#b00020;" if error else "")
