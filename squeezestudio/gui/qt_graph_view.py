"""The model graph view: netron inside the window, with honest fall-backs.

netron draws the ONNX graph of the original and the compressed model (one tab
each) from a private local server (:class:`NetronServer`). Two things can
stand in the way and the user is told which, with another way to see the file:

* Qt WebEngine is an optional package (``PySide6-Addons[webengine]``); without
  it the graph opens in the system browser instead ("Open in browser").
* netron's viewer refuses to work 180 days after its build; once expired, no
  server is started and the user is offered to open the ONNX file in another
  program or to show it in its folder.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Callable, Optional, Union

from PySide6.QtCore import QCoreApplication, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.netron_server import (
    PINNED_VERSION, NetronServer, expiry_date, is_expired, netron_version)

PathLike = Union[str, "os.PathLike[str]"]
WEBENGINE_PACKAGE = 'pip install "PySide6-Addons[webengine]"'
TABS = ("original", "compressed")


def webengine_available() -> bool:
    """Whether Qt WebEngine can be imported (it is an optional extra of PySide6)."""
    try:
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def prepare_webengine() -> bool:
    """Call before creating the QApplication so the in-window viewer can work.

    Qt WebEngine must be imported before the application exists, needs shared
    OpenGL contexts, and refuses to start as root unless its sandbox is off.
    Returns whether WebEngine is available.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    if not webengine_available():
        return False
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts, True)
    return True


class QtGraphPane(QWidget):
    """One model's graph: an embedded viewer, or a message with buttons that say what to do."""

    def __init__(self, title: str, open_url: Callable[[QUrl], bool], use_webengine: bool,
                 today: Optional[dt.date], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.title = title
        self.server = NetronServer()
        self.model_path: Optional[Path] = None
        self.web_view: Optional[QWidget] = None
        self._open_url = open_url
        self._use_webengine = use_webengine
        self._today = today
        layout = QVBoxLayout(self)
        self.message_label = QLabel()
        self.message_label.setObjectName("graphMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.browser_button = QPushButton("Open in browser")
        self.browser_button.clicked.connect(self.open_in_browser)
        self.other_app_button = QPushButton("Open file in another app")
        self.other_app_button.clicked.connect(self.open_in_other_app)
        self.show_file_button = QPushButton("Show file")
        self.show_file_button.clicked.connect(self.show_file)
        for button in (self.browser_button, self.other_app_button, self.show_file_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.nodes = QTableWidget(0, 3)  # the operators, when the drawing is not embedded
        self.nodes.setHorizontalHeaderLabels(["Operator", "Node", "Weight shapes"])
        self.nodes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.nodes.verticalHeader().setVisible(False)
        header = self.nodes.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.nodes, 1)
        self.spacer = QWidget()
        layout.addWidget(self.spacer, 1)
        self._layout = layout
        self.show_model(None)

    @property
    def url(self) -> Optional[str]:
        return self.server.url

    def message(self) -> str:
        return self.message_label.text()

    def show_model(self, path: Optional[PathLike]) -> None:
        """Show ``path``'s graph (None: an empty pane saying there is nothing yet)."""
        self.stop()
        self.model_path = None if path is None else Path(path)
        if self.model_path is None:
            self._show_message(f"No {self.title} model to show yet.", browser=False, file=False)
            return
        if is_expired(self._today):
            self._show_message(
                f"The graph viewer (netron {netron_version() or PINNED_VERSION}) stopped working on "
                f"{expiry_date():%Y-%m-%d}: netron refuses to run 180 days after it was built. "
                "Update it with \u201cpip install -U netron\u201d, or open the ONNX file in another program.",
                browser=False, file=True, other_app=True)
            return
        try:
            url = self.server.start(self.model_path)
        except SqueezeStudioError as exc:
            self._show_message(f"The graph viewer could not start: {exc}", browser=False, file=True,
                               other_app=True)
            return
        if self._use_webengine and self._embed(url):
            return
        self._show_message(
            "The graph opens in your web browser because Qt WebEngine is not installed "
            f"(to see it inside this window: {WEBENGINE_PACKAGE}).\n{url}", browser=True, file=True)
        self._show_nodes(self.model_path)

    def open_in_browser(self) -> bool:
        return bool(self.url) and bool(self._open_url(QUrl(self.url)))

    def open_in_other_app(self) -> bool:
        return self.model_path is not None and bool(self._open_url(QUrl.fromLocalFile(str(self.model_path))))

    def show_file(self) -> bool:
        """Open the folder holding the ONNX file in the system's file manager."""
        if self.model_path is None:
            return False
        return bool(self._open_url(QUrl.fromLocalFile(str(self.model_path.resolve().parent))))

    def stop(self) -> None:
        """Stop this pane's server and drop its embedded page."""
        if self.web_view is not None:
            self.web_view.setParent(None)
            self.web_view.deleteLater()
            self.web_view = None
        self.server.stop()

    def _show_nodes(self, path: Optional[Path]) -> None:
        """List the graph's operators below the message (nothing when ``path`` is None or unreadable)."""
        from squeezestudio.gui.onnx_node_rows import onnx_node_rows

        try:
            rows = onnx_node_rows(path) if path is not None else []
        except Exception:  # noqa: BLE001 - the list is a convenience; the message already explains
            rows = []
        self.nodes.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.nodes.setItem(i, j, QTableWidgetItem(text))
        self.nodes.setVisible(bool(rows))
        self.spacer.setVisible(not rows)

    def _show_message(self, text: str, *, browser: bool, file: bool, other_app: bool = False) -> None:
        self._show_nodes(None)
        self.message_label.setText(text)
        self.message_label.setVisible(True)
        self.browser_button.setVisible(browser)
        self.show_file_button.setVisible(file)
        self.other_app_button.setVisible(other_app)

    def _embed(self, url: str) -> bool:
        """Show ``url`` in a WebEngine view, with netron's consent cookie set first."""
        try:
            from PySide6.QtNetwork import QNetworkCookie
            from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile
            from PySide6.QtWebEngineWidgets import QWebEngineView
        except ImportError:
            return False
        view = QWebEngineView(self)  # created before the profile, so it is destroyed first
        profile = QWebEngineProfile(self)  # off the record: nothing is kept on disk
        page = QWebEnginePage(profile, view)
        view.setPage(page)
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())
        cookie.setDomain(QUrl(url).host())
        cookie.setPath("/")
        profile.cookieStore().setCookie(cookie, QUrl(url))
        view.load(QUrl(url))
        self._show_message("", browser=False, file=False)
        self.message_label.setVisible(False)
        self._layout.insertWidget(0, view, 100)
        self.web_view = view
        return True


class QtGraphView(QWidget):
    """Tabs with the original and the compressed model's graphs.

    ``today`` (default: the real date) and ``use_webengine`` (default: when
    importable) can be injected, so the fall-backs are testable anywhere;
    ``open_url`` defaults to the desktop's URL handler.
    """

    def __init__(self, parent: Optional[QWidget] = None, *, today: Optional[dt.date] = None,
                 use_webengine: Optional[bool] = None,
                 open_url: Optional[Callable[[QUrl], bool]] = None) -> None:
        super().__init__(parent)
        self._open_url = open_url or QDesktopServices.openUrl
        webengine = webengine_available() if use_webengine is None else use_webengine
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.panes = {name: QtGraphPane(name, self._open_url, webengine, today) for name in TABS}
        for name in TABS:
            self.tabs.addTab(self.panes[name], f"{name.capitalize()} model")
        layout.addWidget(self.tabs)
        self.tabs.setTabEnabled(1, False)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def set_models(self, original_onnx_path: Optional[PathLike],
                   compressed_onnx_path: Optional[PathLike] = None) -> None:
        """Show these ONNX files (None leaves that tab empty and disabled)."""
        self.panes["original"].show_model(original_onnx_path)
        self.panes["compressed"].show_model(compressed_onnx_path)
        self.tabs.setTabEnabled(1, compressed_onnx_path is not None)
        if compressed_onnx_path is None:
            self.tabs.setCurrentIndex(0)

    def show_tab(self, which: str) -> None:
        """Switch to ``"original"`` or ``"compressed"``."""
        self.tabs.setCurrentIndex(TABS.index(which))

    def url(self, which: str) -> Optional[str]:
        return self.panes[which].url

    def message(self, which: str) -> str:
        return self.panes[which].message()

    def shutdown(self) -> None:
        """Stop every netron server and delete their temporary copies."""
        for pane in self.panes.values():
            pane.stop()

    def closeEvent(self, event: object) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)  # type: ignore[arg-type]
