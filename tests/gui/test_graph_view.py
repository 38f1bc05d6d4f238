"""The graph view: netron drawn inside the window, the browser fall-back, the expiry message.

WebEngine is part of the test install (the ``webengine`` extra), so the
embedded view is tested for real; the fall-backs are tested in the same
environment by injecting ``use_webengine=False`` or a date past expiry.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.error
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from squeezestudio.core.io.netron_server import expiry_date, netron_build_date  # noqa: E402
from squeezestudio.gui.qt_graph_view import QtGraphView, prepare_webengine  # noqa: E402

# Before pytest-qt creates the QApplication (test modules are imported at collection).
WEBENGINE = prepare_webengine()


def tiny_onnx(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def two_conv_onnx(path):
    """Conv -> Relu -> Conv with named nodes and real weights, as an exporter would write it."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (4, 1, 3, 3)), ("w2", (2, 4, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="stem_conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"], name="stem_relu"),
             helper.make_node("Conv", ["b", "w2"], ["y"], name="head_conv")]
    graph = helper.make_graph(nodes, "two_conv", [x], [y], initializer=weights)
    onnx.save(helper.make_model(graph), str(path))
    return path


def drawn_node_names(qtbot, pane, timeout_ms=30000):
    """The node names netron has drawn, polled through JavaScript until there are some."""
    names = []
    qtbot.waitUntil(lambda: pane.graph_node_names(lambda found: names.__setitem__(slice(None), found))
                    and bool(names), timeout=timeout_ms)
    return names


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


def test_netron_draws_the_graph_inside_the_window(qtbot, tmp_path):
    assert WEBENGINE, "Qt WebEngine is part of the test install: pip install -e '.[webengine]'"
    original = two_conv_onnx(tmp_path / "original.onnx")
    view = QtGraphView(today=netron_build_date(), open_url=lambda url: pytest.fail(f"opened {url}"))
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.set_models(original)
    pane = view.panes["original"]
    assert pane.web_view is not None and pane.message_label.isHidden() and pane.browser_button.isHidden()
    names = drawn_node_names(qtbot, pane)
    assert {"stem_conv", "head_conv", "stem_relu"} <= set(names)
    no_consent = []
    pane.web_view.page().runJavaScript(
        "JSON.stringify(document.body.classList.contains('message'))", 0, no_consent.append)
    qtbot.waitUntil(lambda: bool(no_consent), timeout=10000)
    assert no_consent == ["false"]  # no consent dialog (or any other message) over the graph
    url = view.url("original")
    view.close()
    assert pane.web_view is None and not reachable(url)


def test_a_page_that_fails_to_load_falls_back_to_the_browser(qtbot, tmp_path):
    assert WEBENGINE
    original = two_conv_onnx(tmp_path / "original.onnx")
    opened = []
    view = QtGraphView(today=netron_build_date(), use_webengine=True,
                       open_url=lambda url: opened.append(url.toString()) or True)
    qtbot.addWidget(view)
    view.set_models(original)
    pane = view.panes["original"]
    pane._load_finished(pane.web_view, False)  # what WebEngine reports for a page it could not load
    assert pane.web_view is None and "could not be shown inside this window" in view.message("original")
    assert pane.nodes.rowCount() == 3 and pane.nodes.item(0, 1).text() == "stem_conv"
    pane.browser_button.click()
    assert opened == [view.url("original")] and reachable(opened[0])
    view.shutdown()
