"""Test-wide settings: Qt offscreen, deterministic torch, a writable HOME for QSettings."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same random state, so failures reproduce."""
    import torch

    torch.manual_seed(0)
    yield


def pytest_configure(config):
    """One torch thread: the test models are tiny, and thread start-up dominates on 2 cores."""
    import torch

    torch.set_num_threads(1)
