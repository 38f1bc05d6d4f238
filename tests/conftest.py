"""Test-wide settings: Qt offscreen, deterministic torch, a writable HOME for QSettings, a scratch data cache."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

import pytest  # noqa: E402

pytest_plugins = ["third_party_fixtures"]  # ONNX models and image folders built like third-party ones


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same random state, so failures reproduce."""
    import torch

    torch.manual_seed(0)
    yield


def pytest_configure(config):
    """One torch thread: the test models are tiny, and thread start-up dominates on 2 cores."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    # Data sets cached on disk go to a folder of this run, never the user's ~/.cache.
    os.environ.setdefault("SQUEEZESTUDIO_CACHE_DIR", tempfile.mkdtemp(prefix="squeezestudio-test-cache-"))


def pytest_unconfigure(config):
    """Remove the run's data cache folder."""
    import shutil

    folder = os.environ.get("SQUEEZESTUDIO_CACHE_DIR", "")
    if "squeezestudio-test-cache-" in folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance of 2 CPUs for the whole session (start-up takes seconds), shut down at its end.

    Skips the test when the ``cluster`` extra (Ray) is not installed.
    """
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'squeezestudio[cluster]' runs this test")
    from squeezestudio.core.cluster.connection import ClusterTarget, RayConnection

    conn = RayConnection(ClusterTarget("local", workers=2), start_attempts=3)  # shared 2-core machines are busy
    yield conn
    conn.close()
