"""The plots follow the system palette, so axis text stays legible in light and dark themes."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

from squeezestudio.gui.qt_main_window import QtMainWindow


def test_plot_text_takes_the_window_text_colour_of_a_dark_palette(qtbot, qapp):
    import pyqtgraph as pg

    original = qapp.palette()
    dark = QPalette(original)
    dark.setColor(QPalette.ColorRole.Window, QColor(30, 30, 30))
    dark.setColor(QPalette.ColorRole.WindowText, QColor(230, 230, 230))
    qapp.setPalette(dark)
    try:
        window = QtMainWindow()
        qtbot.addWidget(window)
        window.finish_setup()
        foreground = pg.mkColor(pg.getConfigOption("foreground"))
        assert (foreground.red(), foreground.green(), foreground.blue()) == (230, 230, 230)
    finally:
        qapp.setPalette(original)
