"""The classify view: drag-and-drop offscreen, results equal the models' own answers, bad files."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from squeezestudio.core.data.dataset import PreprocessSpec  # noqa: E402
from squeezestudio.gui.qt_classify_view import QtClassifyView  # noqa: E402

SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
NAMES = [str(i) for i in range(10)]


def write_digit_pngs(folder, count=2):
    """``count`` sklearn digits as 8x8 PNGs; returns (paths, pixel arrays)."""
    digits = load_digits()
    paths, arrays = [], []
    for i in range(count):
        pixels = np.clip(np.rint(digits.images[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        path = folder / f"digit_{i}.png"
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(path)
        arrays.append(pixels)
    return paths, arrays


def tiny_models():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    torch.manual_seed(1)
    compressed = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return {"original": original, "compressed": compressed}


def _direct_top5(model, pixels):
    x = torch.from_numpy((pixels.astype(np.float32) / 255.0 - 0.5) / 0.5).reshape(1, 1, 8, 8)
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)[0].topk(5).indices.tolist()


def drag_enter(mime, pos=QPoint(10, 10)):
    """A QDragEnterEvent (its only constructor takes a QPoint, which PySide marks deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime,
                               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)


def drop_files(widget, paths):
    """Send a real drag-enter then drop of ``paths`` to ``widget``; returns whether both were accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = drag_enter(mime)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_dropped_images_show_each_models_top5(qtbot, tmp_path):
    paths, arrays = write_digit_pngs(tmp_path)
    models = tiny_models()
    view = QtClassifyView()
    qtbot.addWidget(view)
    view.set_models(models, SPEC, NAMES)
    view.resize(900, 600)
    view.show()
    assert drop_files(view, paths) == (True, True)
    qtbot.waitUntil(lambda: len(view.rows()) == 2, timeout=10000)
    for row, pixels in zip(view.rows(), arrays):
        assert row.error_label is None
        assert set(row.columns) == {"original", "compressed"}
        for name, model in models.items():
            shown = [p.class_index for p in row.columns[name].predictions]
            assert shown == _direct_top5(model, pixels)
        same = row.columns["original"].predictions[0].class_index == \
            row.columns["compressed"].predictions[0].class_index
        assert row.result.agree is same
        assert row.badge.isVisibleTo(view)
        assert row.badge.text() == ("Same top class" if same else "Different top class")
    assert "2 image(s) classified" in view.status_label.text()


def test_a_non_image_file_shows_an_error_row_and_the_rest_still_work(qtbot, tmp_path):
    paths, _ = write_digit_pngs(tmp_path, count=1)
    bad = tmp_path / "readme.txt"
    bad.write_text("definitely not pixels")
    view = QtClassifyView()
    qtbot.addWidget(view)
    view.set_models(tiny_models(), SPEC, NAMES)
    drop_files(view, [bad, paths[0]])
    qtbot.waitUntil(lambda: len(view.rows()) == 2, timeout=10000)
    error_row, good_row = view.rows()
    assert error_row.error_label is not None and "readme.txt" in error_row.error_label.text()
    assert error_row.columns == {}
    assert good_row.error_label is None and len(good_row.columns["original"].predictions) == 5
    assert "1 file(s) could not be read" in view.status_label.text()


def test_a_drag_without_local_files_is_refused(qtbot):
    view = QtClassifyView()
    qtbot.addWidget(view)
    mime = QMimeData()
    mime.setText("just some text")
    enter = drag_enter(mime)
    QApplication.sendEvent(view, enter)
    assert not enter.isAccepted()


def test_images_dropped_before_a_model_are_classified_when_models_arrive(qtbot, tmp_path):
    paths, arrays = write_digit_pngs(tmp_path, count=2)
    view = QtClassifyView()
    qtbot.addWidget(view)
    drop_files(view, [tmp_path])  # a folder: its images are taken
    assert view.rows() == [] and "load a model" in view.status_label.text()
    models = tiny_models()
    view.set_models({"original": models["original"]}, SPEC, NAMES)
    qtbot.waitUntil(lambda: len(view.rows()) == 2, timeout=10000)
    assert [r.result.path for r in view.rows()] == [str(p) for p in paths]
    assert not view.rows()[0].badge.isVisibleTo(view)  # one model: nothing to agree on
    view.set_models(models, SPEC, NAMES)  # new models: the same images again, now compared
    qtbot.waitUntil(lambda: len(view.rows()) == 2 and view.rows()[0].result.agree is not None, timeout=10000)
    view.clear()
    assert view.rows() == [] and view.results() == []
