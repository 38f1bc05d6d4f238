"""Runs the session's long steps in workers and feeds the results to the views.

Open a model or data set, inspect layers, evaluate a recipe: each is a job
on the :class:`JobManager`, keyed so that a newer request supersedes an older
one (a new slider position cancels the running evaluation). Results land on
the GUI thread, where the session is updated and ``experimentReady`` /
``rowsReady`` tell the views.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Signal

from squeezestudio.core.errors import UntrustedCodeError
from squeezestudio.core.session.experiments import Experiment, format_bytes
from squeezestudio.core.session.studio_session import StudioSession
from squeezestudio.gui.qt_worker import JobManager
from squeezestudio.core.compression.layer_table import layer_table


class NeedsTrust:
    """Returned by a load job when the file would run code: the window asks the user."""

    def __init__(self, path: str, reason: str, options: Optional[dict[str, Any]] = None) -> None:
        self.path, self.reason, self.options = path, reason, dict(options or {})


def rows_for(handle: Any, experiment: Optional[Experiment] = None, cm: Any = None,
             registry: Any = None) -> list[Any]:
    """Layer rows for the original model, or for a point's compressed model ``cm``.

    The per-layer bytes come from the point's size report when it is still
    in memory, else from measuring ``cm`` again with ``registry`` (the same
    encoder, so the same bytes).
    """
    # lazy: torch; the window paints first
    from squeezestudio.core.compression.codec import size_report
    from squeezestudio.core.model.inspection import inspect_model

    cm = cm if cm is not None else (experiment.compressed if experiment is not None else None)
    if experiment is not None and cm is not None:
        sizes = (experiment.size_report if experiment.compressed is cm and experiment.size_report
                 else size_report(cm, registry=registry))
        return layer_table(inspect_model(cm.handle), cm.encodings, sizes)
    return layer_table(inspect_model(handle))


class PointShown:
    """A point's model, loaded for the views: from memory, its .sqz file, or rebuilt from its recipe."""

    def __init__(self, experiment: Experiment, compressed: Any, rebuilt: bool, rows: list[Any]) -> None:
        self.experiment, self.compressed, self.rebuilt, self.rows = experiment, compressed, rebuilt, rows


class EvaluationRunner(QObject):
    """The session's jobs: load, inspect, evaluate; results come back as signals."""

    experimentReady = Signal(object)
    rowsReady = Signal(list)
    modelLoaded = Signal(str)
    dataLoaded = Signal(str)
    trustNeeded = Signal(object)
    message = Signal(str)
    pointShown = Signal(object)  # PointShown: every view shows this point's model

    def __init__(self, session: StudioSession, jobs: JobManager, parent: Optional[QObject] = None, *,
                 limit: Optional[int] = None) -> None:
        """``limit``: the images interactive points are measured on, as the user set it (0: all; None: keep)."""
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        if limit is not None:
            session.set_interactive_limit(limit)

    # -- loading --------------------------------------------------------
    def open_model(self, path: str, *, trust: bool = False,
                   then: Optional[Callable[[], None]] = None, options: Optional[dict[str, Any]] = None) -> None:
        """Load ``path`` in a worker; ``options`` (preprocess, class_names, arch) go to the loader."""
        def load(progress: Any = None, cancel: Any = None) -> Any:
            try:
                return self.session.load_model_file(path, trust=trust, **(options or {}))
            except UntrustedCodeError as exc:
                return NeedsTrust(path, str(exc), options)

        def done(result: Any) -> None:
            if isinstance(result, NeedsTrust):
                self.trustNeeded.emit(result)
                return
            source = self.session.data_source
            self.session.set_model(result, path)
            self.modelLoaded.emit(path)
            self.inspect()
            if source:
                self.open_data(source)  # data is preprocessed for the model: load it again
            if then is not None:
                then()

        self.message.emit(f"Opening {path}…")
        self.jobs.start("load", load, on_finished=done)

    def open_data(self, source: str) -> None:
        handle = self.session.handle
        if handle is None:
            self.message.emit("Open a model first; the data is prepared for its input size.")
            return

        def done(dataset: Any) -> None:
            if self.session.handle is not handle:
                return
            self.session.set_data(dataset, source)
            self.dataLoaded.emit(source)
            skipped = len(getattr(dataset, "skipped", []) or [])
            note = f" ({skipped} file(s) skipped)" if skipped else ""
            notices = " ".join(getattr(dataset, "notices", []) or [])  # e.g. a rebuilt disk cache
            self.message.emit(f"Data: {source}, {len(dataset)} images{note}." + (f" {notices}" if notices else ""))
            self.evaluate_original()
            if self.session.recipe is not None:
                self.evaluate(self.session.recipe)

        self.jobs.start("data", lambda progress=None, cancel=None: self.session.load_data_source(source, handle),
                        on_finished=done)

    def inspect(self, experiment: Optional[Experiment] = None) -> None:
        """Show ``experiment``'s model in every view (the original model's rows when None or original)."""
        handle = self.session.handle
        if handle is None:
            return
        if experiment is not None and not experiment.is_original:
            self.show_point(experiment)
            return
        self.jobs.start("inspect", lambda progress=None, cancel=None: rows_for(handle),
                        on_finished=self.rowsReady.emit)
        if experiment is not None:
            self.pointShown.emit(PointShown(experiment, None, False, []))

    def show_point(self, experiment: Experiment) -> None:
        """Load a point's model (memory, its file, or its recipe) off the GUI thread, then show it."""
        handle, session = self.session.handle, self.session

        def job(progress: Any = None, cancel: Any = None) -> PointShown:
            cm, rebuilt = session.point_model(experiment, progress=progress, cancel=cancel)
            return PointShown(experiment, cm, rebuilt, rows_for(handle, experiment, cm, session.registry))

        def done(shown: PointShown) -> None:
            if self.session.handle is not handle:
                return
            self.rowsReady.emit(shown.rows)
            self.pointShown.emit(shown)

        if not session.has_point_model(experiment):
            self.message.emit(f"{experiment.label}: its file was evicted from the point store; "
                              "rebuilding it from its recipe…")
        self.jobs.start("inspect", job, on_finished=done)

    # -- evaluation -----------------------------------------------------
    def ready(self) -> bool:
        return self.session.handle is not None and self.session.data is not None

    def evaluate_original(self) -> None:
        if self.ready() and self.session.current_original() is None:  # on the images points are measured on
            self._run("original", None, original=True)

    def evaluate(self, recipe: Any) -> None:
        """Evaluate ``recipe`` (superseding a running evaluation); reuse an identical result."""
        if not self.ready():
            self.message.emit("Open a model and a data set (File > Open data) to evaluate.")
            return
        known = self.session.known_result(recipe)
        if known is not None:
            self.jobs.cancel("evaluate")
            self.experimentReady.emit(known)
            self.inspect(known)
            return
        self._run("evaluate", recipe)

    def _run(self, key: str, recipe: Any, *, original: bool = False) -> None:
        """Evaluate in a worker; the point is shown first, the layer rows follow in their own job."""
        session, handle = self.session, self.session.handle

        def job(progress: Any = None, cancel: Any = None) -> Experiment:
            return session.evaluate_recipe(recipe, progress, cancel, original=original)

        def done(experiment: Experiment) -> None:
            if self.session.handle is not handle:
                return
            self.session.add_experiment(experiment)
            self.experimentReady.emit(experiment)
            if not original or len(self.session.experiments) == 1:
                self.inspect(None if original else experiment)
            top1 = experiment.metric("top1")
            accuracy = "" if top1 is None else f", top-1 {top1 * 100:.2f}%"
            self.message.emit(f"{experiment.label}: {format_bytes(experiment.size_bytes)}{accuracy}")

        def cancelled() -> None:
            if self.jobs.current(key) is None:  # cancelled by the user, not superseded by a newer request
                self.message.emit("Cancelled: no point was added for that configuration.")

        self.jobs.start(key, job, on_finished=done, on_cancelled=cancelled)
