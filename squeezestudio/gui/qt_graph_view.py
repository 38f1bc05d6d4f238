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
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional, Union

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.io.netron_server import (
    PINNED_VERSION, NetronServer, expiry_date, is_expired, netron_version)

PathLike = Union[str, "os.PathLike[str]"]
WEBENGINE_PACKAGE = 'pip install "PySide6-Addons[webengine]"'
TABS = ("original", "compressed")
NODE_ID_PREFIX = "node-name-"  # netron gives each drawn node the id "node-name-<ONNX node name>"
NODE_IDS_SCRIPT = "JSON.stringify(Array.from(document.querySelectorAll('#canvas .graph-node'), e => e.id))"


def webengine_available() -> bool:
    """Whether Qt WebEngine can be imported (it is an optional extra of PySide6)."""
    try:
        import PySide6.QtWebEngineWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def allow_webengine_as_root() -> None:
    """Turn WebEngine's sandbox off when running as root, where Chromium refuses to start otherwise.

    The variable is read when WebEngine starts (at the first page), so this
    also works after the QApplication exists; an explicit user setting wins.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")


def prepare_webengine() -> bool:
    """Call before creating the QApplication so the in-window viewer can work.

    Qt WebEngine wants to be imported before the application exists, with
    shared OpenGL contexts (a late start still works, with a warning), and
    refuses to start as root unless its sandbox is off. Returns whether
    WebEngine is available.
    """
    allow_webengine_as_root()
    if not webengine_available():
        return False
    if QCoreApplication.instance() is None:  # Qt ignores (and warns about) the attribute afterwards
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
        self.web_view: Optional[QWidget] = None  # a QWebEngineView while the graph is embedded
        self._profile: Optional[QObject] = None  # its private, off-the-record WebEngine profile
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
        self.stop_view()
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
        """Show ``url`` in a WebEngine view, with netron's consent cookie set first.

        Without the cookie netron first tries to reach an outside host and then
        covers the graph with a consent dialog. The profile is private to this
        page and kept in memory only, so nothing is written to the user's disk.
        """
        try:
            from PySide6.QtNetwork import QNetworkCookie
            from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile
            from PySide6.QtWebEngineWidgets import QWebEngineView
        except ImportError:
            return False
        allow_webengine_as_root()
        view = QWebEngineView(self)
        profile = QWebEngineProfile(self)  # no storage name: off the record
        view.setPage(QWebEnginePage(profile, view))
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())
        cookie.setPath("/")
        profile.cookieStore().setCookie(cookie, QUrl(url))  # host-only cookie for the server's origin
        view.loadFinished.connect(lambda ok, v=view: self._load_finished(v, ok))
        view.load(QUrl(url))
        self._show_message("", browser=False, file=False)
        self.message_label.setVisible(False)
        self.spacer.setVisible(False)
        self._layout.insertWidget(0, view, 100)
        self.web_view, self._profile = view, profile
        return True

    def _load_finished(self, view: QWidget, ok: bool) -> None:
        """A page that did not load is replaced by the browser fall-back, which says so."""
        if ok or view is not self.web_view:
            return
        url = self.url or ""
        self.stop_view()
        self._show_message(f"The graph could not be shown inside this window; open it in your web browser.\n{url}",
                           browser=True, file=True)
        self._show_nodes(self.model_path)

    def stop_view(self) -> None:
        """Drop the embedded page (the server keeps running for the browser)."""
        if self.web_view is not None:
            view, self.web_view = self.web_view, None
            view.setParent(None)
            view.page().deleteLater()  # the page before its profile, or WebEngine warns of trouble
            view.deleteLater()
        if self._profile is not None:
            self._profile.deleteLater()
            self._profile = None

    def graph_node_names(self, callback: Callable[[list[str]], None]) -> bool:
        """Ask the embedded netron for the names of the nodes it has drawn.

        ``callback`` receives them (an empty list until the graph is drawn);
        returns False when nothing is embedded. Used by tests and screenshots
        to know that the graph really rendered.
        """
        if self.web_view is None:
            return False

        def parse(result: object) -> None:
            try:
                ids = json.loads(result) if isinstance(result, str) else []
            except ValueError:
                ids = []
            callback([i[len(NODE_ID_PREFIX):] for i in ids if isinstance(i, str) and i.startswith(NODE_ID_PREFIX)])

        self.web_view.page().runJavaScript(NODE_IDS_SCRIPT, 0, parse)  # type: ignore[attr-defined]
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
        # Delete the pages now, before their profiles and the application go away
        # (after aboutToQuit no event loop would run the deferred deletes).
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    def closeEvent(self, event: object) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)  # type: ignore[arg-type]
