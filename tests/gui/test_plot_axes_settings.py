"""The trade-off plot's x/y/colour choices survive a restart of the window (and unknown names fall back)."""

from __future__ import annotations

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.session.experiments import Experiment, ExperimentLog
from squeezestudio.core.session.plot_axes import DEFAULT_X, DEFAULT_Y, latency_key
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.gui.qt_settings import AppSettings, make_settings
from squeezestudio.gui.qt_tradeoff_plot import NO_COLOUR, QtTradeoffPlot

INT8 = latency_key("onnx-int8")


def _window(qtbot, path) -> QtMainWindow:
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=AppSettings(make_settings(str(path))))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.plot is not None, timeout=30000)  # built after the first paint
    return window


def test_the_choosers_are_restored_when_the_window_starts_again(qtbot, tmp_path):
    ini = tmp_path / "settings.ini"
    first = _window(qtbot, ini)
    assert (first.plot.x_name, first.plot.metric_name, first.plot.colour_name) == (DEFAULT_X, DEFAULT_Y, NO_COLOUR)
    for combo, key in ((first.plot.x_combo, INT8), (first.plot.combo, "agreement"),
                       (first.plot.colour_combo, "size_bytes")):
        combo.setCurrentIndex(combo.findData(key))  # as the user picks them
    first.close()

    second = _window(qtbot, ini)
    plot = second.plot
    assert (plot.x_name, plot.metric_name, plot.colour_name) == (INT8, "agreement", "size_bytes")
    assert (plot.x_combo.currentData(), plot.combo.currentData(), plot.colour_combo.currentData()) == \
        (INT8, "agreement", "size_bytes")
    plot.colour_combo.setCurrentIndex(plot.colour_combo.findData(NO_COLOUR))  # back to frontier colouring
    second.close()
    assert AppSettings(make_settings(str(ini))).plot_axes() == (INT8, "agreement", None)


def test_names_no_longer_known_fall_back_to_the_defaults_one_by_one(qtbot, tmp_path):
    settings = AppSettings(make_settings(str(tmp_path / "s.ini")))
    settings.qsettings.setValue("plot_x", "latency_tflite_b1_ms")  # e.g. written by another version
    settings.qsettings.setValue("plot_y", "top5")
    settings.qsettings.setValue("plot_colour", "flops")
    log = ExperimentLog([Experiment("o", {}, "original", 1000, {"top1": 0.9, "top5": 0.99}, is_original=True)])
    plot = QtTradeoffPlot(log, settings=settings)
    qtbot.addWidget(plot)
    assert (plot.x_name, plot.metric_name, plot.colour_name) == (DEFAULT_X, "top5", NO_COLOUR)
    assert plot.x_combo.currentData() == DEFAULT_X and plot.combo.currentData() == "top5"
    assert len(plot.plotted()) == 1
