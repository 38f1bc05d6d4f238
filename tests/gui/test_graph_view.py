"""The graph view: browser fall-back without WebEngine, expiry message, servers stopped on close."""

from __future__ import annotations

import datetime as dt
import os
import urllib.error
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from squeezestudio.core.netron_server import expiry_date, netron_build_date  # noqa: E402
from squeezestudio.gui.qt_graph_view import QtGraphView  # noqa: E402


def tiny_onnx(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def reachable(url):
    assert url.startswith("http://127.0.0.1:")
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_without_webengine_the_graph_is_served_for_the_browser(qtbot, tmp_path):
    original = tiny_onnx(tmp_path / "original.onnx")
    compressed = tiny_onnx(tmp_path / "compressed.onnx")
    opened = []
    view = QtGraphView(today=netron_build_date(), use_webengine=False,
                       open_url=lambda url: opened.append(url.toString()) or True)
    qtbot.addWidget(view)
    view.set_models(original, compressed)
    assert view.tabs.isTabEnabled(1)
    urls = [view.url("original"), view.url("compressed")]
    assert all(urls) and urls[0] != urls[1]
    assert all(reachable(u) for u in urls)
    assert reachable(urls[1] + "data/compressed.onnx")
    pane = view.panes["original"]
    assert "WebEngine is not installed" in view.message("original") and urls[0] in view.message("original")
    assert not pane.browser_button.isHidden() and not pane.show_file_button.isHidden()
    pane.browser_button.click()
    pane.show_file_button.click()
    assert opened == [urls[0], tmp_path.resolve().as_uri()]
    view.close()
    assert view.url("original") is None
    assert not any(reachable(u) for u in urls)


def test_an_expired_viewer_explains_why_and_offers_the_file(qtbot, tmp_path):
    original = tiny_onnx(tmp_path / "original.onnx")
    opened = []
    view = QtGraphView(today=expiry_date() + dt.timedelta(days=3), use_webengine=False,
                       open_url=lambda url: opened.append(url.toLocalFile()) or True)
    qtbot.addWidget(view)
    view.set_models(original)
    text = view.message("original")
    assert "stopped working" in text and f"{expiry_date():%Y-%m-%d}" in text
    assert view.url("original") is None  # nothing served: the page would only say "update"
    pane = view.panes["original"]
    assert pane.browser_button.isHidden() and not pane.other_app_button.isHidden()
    pane.other_app_button.click()
    assert opened == [str(original)]
    assert not view.tabs.isTabEnabled(1) and "No compressed model" in view.message("compressed")


def test_setting_new_models_stops_the_old_servers(qtbot, tmp_path):
    first = tiny_onnx(tmp_path / "a.onnx")
    second = tiny_onnx(tmp_path / "b.onnx")
    view = QtGraphView(today=netron_build_date(), use_webengine=False, open_url=lambda url: True)
    qtbot.addWidget(view)
    view.set_models(first)
    old = view.url("original")
    view.set_models(second)
    assert not reachable(old)
    assert reachable(view.url("original") + "data/b.onnx")
    view.shutdown()
    assert view.url("original") is None
