"""Run > Find the best model under…: the core search in a worker, its point on the plot, cancel adds nothing."""

from __future__ import annotations

import os

import pytest

from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.search.settings import setting_grid
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_main_window import QtMainWindow
from squeezestudio.core.compression.registry import default_registry

SMALL_GRID = setting_grid(sparsities=(0.0, 0.9), cluster_bits=(2, 4), quant_bits=())


@pytest.fixture
def window(qtbot, app_settings):
    window = QtMainWindow(StudioSession(registry=default_registry()), settings=app_settings)
    qtbot.addWidget(window)
    window.show()
    window.session.data_source = "digits"
    window.open_model(str(demo_model_path("lenet300_100")))
    qtbot.waitUntil(lambda: window.session.experiments.original() is not None, timeout=60000)
    yield window
    window.jobs.shutdown()


def test_search_puts_a_point_within_the_budget_on_the_plot(qtbot, window):
    window.window_actions["search"].trigger()
    dialog = window.search_dialog
    assert dialog.isVisible() and dialog.budget_radio.isChecked()
    original = window.session.experiments.original()
    assert dialog.budget.value() == original.size_bytes // 4  # the suggestion starts from the measured size
    dialog.settings_grid = SMALL_GRID
    before = len(window.session.experiments)
    dialog.start()
    assert dialog.cancel_button.isEnabled() and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.last_result is not None or "error" in dialog.status.text().lower(),
                    timeout=120000)
    assert dialog.last_result is not None, dialog.status.text()
    added = window.session.experiments.list()[-1]
    assert len(window.session.experiments) == before + 1 and added.label.startswith("search")
    assert added.size_bytes <= dialog.budget.value() and added.metric("top1") > 0.5
    assert window.plot.current_id == added.id
    assert "fc1" in dialog.details.toPlainText() and dialog.start_button.isEnabled()


def test_the_search_reports_on_the_interactive_subset_and_its_point_says_so(qtbot, window):
    from squeezestudio.core.measure.evaluation import evaluate
    from squeezestudio.gui.qt_subset_actions import set_interactive_limit

    session, log = window.session, window.session.experiments
    total = len(session.data)
    full_original = log.original()
    assert full_original.metric("images") == total  # 1,000 by default: all the digits
    set_interactive_limit(window, 100)  # the original is measured again, on the 100-image subset
    qtbot.waitUntil(lambda: session.current_original() is not None, timeout=60000)
    window.window_actions["search"].trigger()
    dialog = window.search_dialog
    dialog.settings_grid = SMALL_GRID
    dialog.start()
    qtbot.waitUntil(lambda: dialog.last_result is not None or "error" in dialog.status.text().lower(),
                    timeout=120000)
    assert dialog.last_result is not None, dialog.status.text()
    point = log.list()[-1]
    assert point.metric("images") == 100 and point.metric("images_total") == total
    assert dialog.last_result.final.evaluation.n == 100  # reported on the subset, chosen on held-out training data
    subset = session.interactive_data(100)
    again = evaluate(point.compressed.handle.module, subset)
    assert point.metric("top1") == pytest.approx(again.top1)  # its top-1 is on exactly those images
    assert f"on 100 of {total:,} images" in dialog.status.text()
    # compared with the points on the same 100 images; the original measured on all of them is not
    plot = window.plot
    assert point.id in [s.data() for s in plot.scatter.points()] and point.id in plot.frontier_ids
    assert [s.data() for s in plot.elsewhere.points()] == [full_original.id]
    assert f"hollow, not compared: 1 on all {total:,}" in plot.summary.toolTip()
    if os.environ.get("SQUEEZESTUDIO_SCREENSHOTS"):
        folder = os.environ["SQUEEZESTUDIO_SCREENSHOTS"]
        qtbot.wait(50)  # the status line's new height is laid out
        dialog.grab().save(os.path.join(folder, "search_dialog.png"))
        window.grab().save(os.path.join(folder, "search_window.png"))


def test_cancelled_search_adds_nothing(qtbot, window):
    window.window_actions["search"].trigger()
    dialog = window.search_dialog
    dialog.settings_grid = SMALL_GRID
    before = len(window.session.experiments)
    dialog.start()
    dialog.cancel()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=60000)
    assert "cancelled" in dialog.status.text() and len(window.session.experiments) == before


def test_latency_of_the_selected_point_joins_its_metrics(qtbot, window):
    from squeezestudio.core.session.studio_session import recipe_from_dict

    log = window.session.experiments
    before = len(log)
    window.session.set_recipe(recipe_from_dict({"version": 1, "methods": {"quantize": {"bits": 6}}, "layers": {}}))
    window.runner.evaluate(window.session.recipe)
    qtbot.waitUntil(lambda: len(log) > before, timeout=60000)
    point = log.list()[-1]
    window.window_actions["latency"].trigger()
    qtbot.waitUntil(lambda: getattr(window, "last_latency", None) is not None or bool(window.last_error[0]),
                    timeout=300000)
    assert not window.last_error[0], window.last_error
    assert point.metrics["latency_onnx-int8_b1_ms"] > 0 and point.metrics["latency_onnx_threads"] == 1
    assert point.metrics["latency_onnx-int8_bytes"] < point.metrics["latency_onnx_bytes"]


def test_a_search_on_the_cluster_finds_the_same_point_as_on_this_machine(qtbot, window, ray_cluster):
    window.window_actions["search"].trigger()
    dialog = window.search_dialog
    dialog.settings_grid = SMALL_GRID
    dialog.start()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=120000)
    local = window.session.experiments.list()[-1]
    assert dialog.last_result is not None and local.label.startswith("search"), dialog.status.text()

    dialog._tables.clear()  # the per-layer table is measured again, on the cluster this time
    dialog.on_cluster.setChecked(True)
    assert dialog.address.isEnabled() and dialog.workers.isEnabled()
    dialog.address.setText("local")
    dialog.workers.setValue(2)
    dialog.kept.connection = ray_cluster  # the suite's Ray instance (ClusterTarget("local", workers=2))
    try:
        dialog.start()
        qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=180000)
        remote = window.session.experiments.list()[-1]
        assert remote is not local, dialog.status.text()
        assert remote.recipe == local.recipe and remote.size_bytes == local.size_bytes
        assert remote.metric("top1") == local.metric("top1")
    finally:
        dialog.kept.connection = None  # the fixture closes its own instance


def test_a_bad_cluster_address_is_one_sentence_and_nothing_starts(qtbot, window):
    window.window_actions["search"].trigger()
    dialog = window.search_dialog
    dialog.on_cluster.setChecked(True)
    dialog.address.setText("   ")
    before = len(window.session.experiments)
    dialog.start()
    assert "address is empty" in dialog.status.text() and dialog.start_button.isEnabled()
    assert len(window.session.experiments) == before and dialog.kept.connection is None
