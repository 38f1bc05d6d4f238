"""Which point the views show, and how much disk the point store uses (status-bar widgets).

Every view (layer chart and table, Classify, Graph, Export) shows one
point's model; :func:`point_caption` is the one wording for it ("#3
prune(sparsity=0.5) · 12.3 KB · top-1 97.20%"), so the views agree. The
:class:`QtPointStoreStatus` label tells the user where the points' ``.sqz``
files are, how much disk they use and how many were evicted to recipe-only.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtWidgets import QLabel, QWidget

from squeezestudio.core.session.experiments import Experiment, format_bytes


def point_number(session: Any, experiment: Experiment) -> int:
    """The point's position among the compressed points, from 1 (the original is not counted)."""
    ids = [e.id for e in session.experiments.list() if not e.is_original]
    return ids.index(experiment.id) + 1 if experiment.id in ids else 0


def point_caption(session: Any, experiment: Optional[Experiment]) -> str:
    """``#3 prune(sparsity=0.5) · 12.3 KB · top-1 97.20%`` (the original model when None)."""
    if experiment is None or experiment.is_original:
        return "the original model"
    top1 = experiment.metric("top1")
    accuracy = "" if top1 is None else f" · top-1 {top1 * 100:.2f}%"
    return f"#{point_number(session, experiment)} {experiment.label} · {format_bytes(experiment.size_bytes)}{accuracy}"


def store_summary(session: Any) -> tuple[str, str]:
    """(short text, tooltip) about the session's point store."""
    store = session.points
    stored = len(store.ids())
    compressed = [e for e in session.experiments.list() if not e.is_original]
    recipe_only = sum(1 for e in compressed if not session.has_point_model(e))
    text = f"points: {stored} stored, {format_bytes(store.disk_bytes())}"
    if recipe_only:
        text += f", {recipe_only} recipe-only"
    folder = str(store.folder) if store.folder is not None else "(no point stored yet)"
    tip = (f"Every measured point's .sqz file is kept in {folder}, at most "
           f"{format_bytes(store.limit_bytes)}; past that the oldest points keep only their recipe and "
           "are rebuilt from it when clicked.")
    return text, tip


class QtPointStoreStatus(QLabel):
    """A status-bar label: points stored, disk used, recipe-only points."""

    def __init__(self, session: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.session = session
        self.refresh()

    def refresh(self) -> None:
        text, tip = store_summary(self.session)
        self.setText(text)
        self.setToolTip(tip)
