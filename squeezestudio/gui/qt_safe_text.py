"""Text from files shown in widgets: control characters escaped, never read as rich text.

A QLabel guesses whether its text is HTML; a class name such as
``<img src=...>`` or a model name holding ESC sequences or a newline and a
forged message would be rendered as markup or break the layout. Every label
that may show a string from a file goes through :func:`set_plain_text`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from squeezestudio.core.printable import printable


def set_plain_text(label: QLabel, text: object) -> None:
    """Show ``text`` in ``label`` as plain text with control characters escaped."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(printable(text))


def plain_label(text: object) -> QLabel:
    """A new label showing ``text`` safely (see :func:`set_plain_text`)."""
    label = QLabel()
    set_plain_text(label, text)
    return label
