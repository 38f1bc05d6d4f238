"""Compare two points (or a point and the original): per-layer diff, accuracy, agreement, disagreements.

Pick A and B among the session's points; the comparison (the core's
:func:`~squeezestudio.core.measure.compare.compare_models`, the same as
``squeezestudio compare``) runs in a worker with each point's exact stored
model (:meth:`StudioSession.point_model`), on the images both points were
measured on (all of them for two points measured on all images), else on the
interactive subset (:func:`~squeezestudio.core.session.interactive_subset.comparison_images`),
so its accuracies match the plot's. The gallery shows the images on which the
two disagree, with both top-5s.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from squeezestudio.core.session.interactive_subset import comparison_images, on_images
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_point_store_status import point_caption
from squeezestudio.gui.qt_worker import JobManager

HEADERS = ("Layer", "Bytes A", "Bytes B", "Bits/w A", "Bits/w B", "Sparsity A", "Sparsity B", "Method A", "Method B")
GALLERY_COLUMNS = 4
THUMB = 72


def tensor_thumbnail(image: Any, size: int = THUMB) -> QImage:
    """A preprocessed (C, H, W) image as a grey or RGB QImage, stretched to 0..255 for display."""
    array = np.asarray(image.detach().cpu().float().numpy() if hasattr(image, "detach") else image, dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    scaled = ((array - low) / (high - low if high > low else 1.0) * 255).astype(np.uint8)
    if scaled.shape[0] == 3:
        rgb = np.ascontiguousarray(scaled.transpose(1, 2, 0))
        qimage = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888)
    else:
        grey = np.ascontiguousarray(scaled[0])
        qimage = QImage(grey.data, grey.shape[1], grey.shape[0], grey.shape[1], QImage.Format.Format_Grayscale8)
    return qimage.copy().scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.FastTransformation)


class QtCompareView(QWidget):
    """Two point choosers, a Compare button, the per-layer diff table and the disagreement gallery."""

    def __init__(self, session: StudioSession, jobs: JobManager, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.result: Any = None
        self.compared_on: Any = None  # (the images compared, the whole data set) of the last comparison
        self.combo_a, self.combo_b = QComboBox(), QComboBox()
        for combo in (self.combo_a, self.combo_b):
            combo.setMinimumContentsLength(28)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.compare)
        self.summary = QLabel("Pick two points (or a point and the original) and press Compare.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.gallery = QWidget()
        self.gallery_layout = QGridLayout(self.gallery)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.gallery)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(scroll)
        splitter.setSizes([220, 380])  # the gallery is what the eye goes to first
        row = QHBoxLayout()
        for w in (QLabel("A"), self.combo_a, QLabel("B"), self.combo_b, self.compare_button):
            row.addWidget(w)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        session.experiments.on_change.append(self.refresh_choices)
        self.destroyed.connect(lambda *_: self._detach())
        self.refresh_choices()

    def _detach(self) -> None:
        if self.refresh_choices in self.session.experiments.on_change:
            self.session.experiments.on_change.remove(self.refresh_choices)

    def refresh_choices(self) -> None:
        """Every point of the session in both choosers (the original first), keeping the choices made."""
        points = self.session.experiments.list()
        for combo, fallback in ((self.combo_a, 0), (self.combo_b, -1)):
            keep = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for e in sorted(points, key=lambda e: not e.is_original):
                combo.addItem(point_caption(self.session, e), e.id)
            index = combo.findData(keep) if keep is not None else -1
            combo.setCurrentIndex(index if index >= 0 else (fallback if fallback >= 0 else combo.count() - 1))
            combo.blockSignals(False)

    def set_points(self, id_a: str, id_b: str) -> None:
        self.combo_a.setCurrentIndex(self.combo_a.findData(id_a))
        self.combo_b.setCurrentIndex(self.combo_b.findData(id_b))

    def compare(self) -> None:
        """Compare the two chosen points in a worker (their stored models, on the evaluation data)."""
        from squeezestudio.core.compression.codec import size_report
        from squeezestudio.core.measure.compare import compare_models

        session, data, handle = self.session, self.session.data, self.session.handle
        chosen = [session.experiments.find(c.currentData() or "") for c in (self.combo_a, self.combo_b)]
        if handle is None or data is None or any(e is None for e in chosen):
            self.summary.setText("Open a model and measure at least two points first.")
            return
        images = comparison_images(chosen, session.interactive_images() or len(data))

        def side(experiment: Any, progress: Any, cancel: Any) -> tuple[Any, Any, Any]:
            if experiment.is_original:
                return handle.module, {}, None
            cm, _ = session.point_model(experiment, progress=progress, cancel=cancel)
            return cm.handle.module, cm.encodings, size_report(cm, registry=session.registry)

        def job(progress: Any = None, cancel: Any = None) -> Any:
            a, b = (side(e, progress, cancel) for e in chosen)
            subset = session.interactive_data(images, data)
            return compare_models(a, b, subset, names=tuple(point_caption(session, e) for e in chosen),
                                  sizes=tuple(e.size_bytes for e in chosen), progress=progress,
                                  cancel=cancel), subset

        def finished(done: Any) -> None:
            result, subset = done
            self.compared_on = (subset, data)
            self.show_result(result)

        self.summary.setText(f"Comparing {on_images(images, len(data))}…")
        self.jobs.start("compare", job, on_finished=finished,
                        on_failed=lambda message, details: self.summary.setText(message),
                        on_cancelled=lambda: self.summary.setText("Comparison cancelled."))

    def show_result(self, result: Any) -> None:
        """Fill the table, the summary and the gallery from a :class:`Comparison`."""
        self.result = result
        rows = result.rows()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            texts = [str(row[0]), *(f"{v:,}" if v != "" else "" for v in row[1:3]),
                     *(f"{v:.2f}" if v != "" else "" for v in row[3:5]),
                     *(f"{v:.1%}" if v != "" else "" for v in row[5:7]), str(row[7]), str(row[8])]
            for c, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if 0 < c < 7:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c in (7, 8) and row[7] != row[8]:
                    item.setBackground(QColor(255, 236, 160))  # the layers the two store differently
                    item.setForeground(QColor(20, 20, 20))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        lines = [f"A = {result.name_a}", f"B = {result.name_b}"]
        if result.agreement is not None:
            acc = "" if result.top1_a is None else (f"top-1 A {result.top1_a * 100:.2f}%, "
                                                      f"B {result.top1_b * 100:.2f}%; ")
            total = len(self.compared_on[1]) if self.compared_on is not None else result.n
            lines.append(f"{acc}agreement {result.agreement * 100:.2f}% {on_images(result.n, total)}; "
                         f"they disagree on {result.disagreement_count} (shown below with both top-5s)")
        self.summary.setText("\n".join(lines))
        self._fill_gallery(result)

    def _fill_gallery(self, result: Any) -> None:
        while self.gallery_layout.count():
            widget = self.gallery_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        data = self.compared_on[0] if self.compared_on is not None else self.session.data  # indices into it
        for i, d in enumerate(result.disagreements):
            cell = QWidget()
            box = QVBoxLayout(cell)
            picture = QLabel()
            if data is not None and d.index < len(data):
                picture.setPixmap(QPixmap.fromImage(tensor_thumbnail(data.images[d.index])))
            box.addWidget(picture)
            text = [f"label {d.label}" if d.label is not None else f"image {d.index}"]
            for tag, top in (("A", d.top5_a), ("B", d.top5_b)):
                text.append(f"{tag}: " + ", ".join(f"{c} {p * 100:.0f}%" for c, p in top))
            caption = QLabel("\n".join(text))
            caption.setStyleSheet("font-size: 8pt;")
            box.addWidget(caption)
            self.gallery_layout.addWidget(cell, i // GALLERY_COLUMNS, i % GALLERY_COLUMNS)
