"""The netron server shows only a private copy of the model and knows when the viewer expires."""

from __future__ import annotations

import datetime as dt
import socket
import urllib.error
import urllib.request
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.io.netron_server import (
    PINNED_BUILD_DATE, PINNED_VERSION, NetronServer, VIEWER_LIFETIME_DAYS, expiry_date, installed_build_date,
    is_expired, netron_build_date, netron_version)


def _tiny_onnx(path: Path) -> Path:
    """A one-node Relu graph: enough for netron to serve."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def _status(url: str) -> int:
    """HTTP status of a GET on the loopback server (errors become their status code)."""
    assert url.startswith("http://127.0.0.1:")
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serves_the_model_copy_but_not_the_users_other_files(tmp_path):
    model = _tiny_onnx(tmp_path / "model.onnx")
    (tmp_path / "secret.txt").write_text("private notes")
    server = NetronServer()
    url = server.start(model)
    try:
        assert server.running and url == server.url
        assert _status(url) == 200
        assert _status(url + "data/model.onnx") == 200
        assert _status(url + "data/secret.txt") != 200
        assert _status(url + "data/..%2Fsecret.txt") != 200
        served = server.served_file
        assert served is not None and served.parent != tmp_path
        assert served.read_bytes() == model.read_bytes()
    finally:
        server.stop()
    assert not served.parent.exists()
    host, port = url[len("http://"):].rstrip("/").split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()
    assert not server.running and server.url is None


def test_restart_serves_the_new_file_and_removes_the_old_copy(tmp_path):
    first = _tiny_onnx(tmp_path / "a.onnx")
    second = _tiny_onnx(tmp_path / "b.onnx")
    with NetronServer() as server:
        server.start(first)
        old_copy = server.served_file
        url = server.start(second)
        assert not old_copy.exists()
        assert _status(url + "data/b.onnx") == 200
        assert _status(url + "data/a.onnx") != 200


def test_missing_model_file_is_a_user_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        NetronServer().start(tmp_path / "nope.onnx")


def test_expiry_is_build_date_plus_lifetime():
    build = netron_build_date()
    assert expiry_date() - build == dt.timedelta(days=VIEWER_LIFETIME_DAYS)
    assert not is_expired(build)
    assert not is_expired(expiry_date() - dt.timedelta(days=1))
    assert is_expired(expiry_date())
    assert is_expired(expiry_date() + dt.timedelta(days=400))


def test_the_pinned_netron_is_the_installed_one():
    # When netron is upgraded, update PINNED_VERSION and PINNED_BUILD_DATE with it.
    assert netron_version() == PINNED_VERSION
    assert installed_build_date() == PINNED_BUILD_DATE
    assert PINNED_BUILD_DATE + dt.timedelta(days=VIEWER_LIFETIME_DAYS) == dt.date(2027, 4, 21)
    assert expiry_date() == dt.date(2027, 4, 21)


def test_build_date_comes_from_the_viewer_page(tmp_path, monkeypatch):
    import netron

    fake = tmp_path / "netron"
    fake.mkdir()
    (fake / "index.html").write_text('<meta name="date" content="2031-02-03 04:05:06">')
    monkeypatch.setattr(netron, "__file__", str(fake / "__init__.py"))
    assert installed_build_date() == dt.date(2031, 2, 3)
    assert expiry_date() == dt.date(2031, 2, 3) + dt.timedelta(days=VIEWER_LIFETIME_DAYS)
    (fake / "index.html").write_text("<html>no date</html>")
    assert installed_build_date() is None and netron_build_date() == PINNED_BUILD_DATE
