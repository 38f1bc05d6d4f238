"""Strings from files in the window: control characters escaped, never rendered as markup."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from squeezestudio.core.measure.classify import Prediction
from squeezestudio.gui.qt_classify_view import _ModelColumn
from squeezestudio.gui.qt_safe_text import set_plain_text

HOSTILE = "cat\x1b]0;pwned\x07\nerror: forged <img src=x>"


def test_labels_show_hostile_text_plainly(qtbot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    set_plain_text(label, HOSTILE)
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == "cat\\x1b]0;pwned\\x07\\nerror: forged <img src=x>"


def test_classify_column_escapes_class_and_model_names(qtbot) -> None:
    column = _ModelColumn("model\x1b[2J", [Prediction(0, HOSTILE, 0.9)])
    qtbot.addWidget(column)
    assert column.title() == "model\\x1b[2J"
    names = [w for w in column.findChildren(QLabel) if "cat" in w.text()]
    assert names and names[0].textFormat() == Qt.TextFormat.PlainText and "\x1b" not in names[0].text()
