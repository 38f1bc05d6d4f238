"""The one state object the GUI holds: model, data, recipe history, experiments.

:class:`StudioSession` is GUI-agnostic (no Qt): listeners subscribe to plain
:class:`Event` objects (``session.events.recipe.connect(cb)``), as in napari's
evented models, so the same state drives the Qt window, a script and a test.
:meth:`StudioSession.evaluate_recipe` is the compress -> size -> evaluate step
the GUI runs in a worker on every control change. The compression methods come
from the ``registry`` the caller (the GUI, a script, a test) passes.

The modules that import torch (recipes, loading, measuring) are imported inside
the functions that use them: the window imports this module before its first
paint, and torch costs about 7 s cold on the reference machine
(``benchmarks/bench_gui_startup.py`` times the first paint).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from squeezestudio.core.atomic_write import PathLike, atomic_write_bytes
from squeezestudio.core.data.calibration import CALIBRATION_IMAGES, calibration_images, training_source
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.session.evented import EventedField, FieldEvents
from squeezestudio.core.session.interactive_subset import (DEFAULT_INTERACTIVE_LIMIT, SessionSubset, SubsetCache,
                                                           full_label, image_metrics, same_images, subset_size)
from squeezestudio.core.session.point_store import PointStore
from squeezestudio.core.session.point_on_all import metrics_of
from squeezestudio.core.session.session_points import SessionPoints, points_folder_for  # noqa: F401 - re-exported
from squeezestudio.core.progress import CancelToken, ProgressCallback, report
from squeezestudio.core.session.experiments import (Experiment, ExperimentLog, method_defaults, new_experiment_id,
                                                    recipe_summary)
from squeezestudio.core.session.project_files import (PROJECT_FORMAT, PROJECT_VERSION, AutosaveInfo,  # noqa: F401 - re-exported
                                              apply_model_settings, default_autosave_dir, find_autosave,
                                              model_settings, read_project)

if TYPE_CHECKING:
    from squeezestudio.core.compression.recipe import Recipe
    from squeezestudio.core.compression.registry import MethodRegistry
    from squeezestudio.core.data.dataset import ImageDataset
    from squeezestudio.core.model.handle import ModelHandle

UNDO_LIMIT = 100


class Event:
    """A list of callbacks called with the event's arguments (napari-style, no Qt)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> Callable[..., None]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class SessionEvents:
    """The session's compound events: a model, data set or project was opened, as one step.

    Each field also has its own typed event in ``session.changed`` (see
    :mod:`.evented`): ``changed.selected_layer``, ``changed.unsaved``... fire on
    every assignment that changes the field, whoever made it.
    """

    def __init__(self) -> None:
        self.model = Event()        # () a model was opened
        self.data = Event()         # () a data set was opened
        self.recipe = Event()       # (recipe) the current recipe changed (set/undo/redo)
        self.selection = Event()    # (layer name or None)
        self.project = Event()      # (path) a project was saved or opened


def recipe_to_dict(recipe: Any) -> dict[str, Any]:
    """A recipe as a JSON-able dict (plain dicts pass through as a copy)."""
    if recipe is None:
        return {}
    if isinstance(recipe, dict):
        return json.loads(json.dumps(recipe))
    from squeezestudio.core.compression.recipe import recipe_to_dict as convert  # lazy: torch (see above)
    return convert(recipe)


def recipe_from_dict(d: dict[str, Any]) -> Any:
    """A Recipe from its dict."""
    from squeezestudio.core.compression.recipe import recipe_from_dict as convert  # lazy: torch (see above)
    return convert(dict(d))


class StudioSession(SessionPoints, SessionSubset):
    """Model, data, current recipe with undo/redo, experiments and selection.

    ``registry`` holds the compression methods, or is a function returning
    them, called on first use (the GUI passes the getter of the
    application's registry, so that the window paints before torch loads).
    ``model_loader(path, trust=...) -> ModelHandle`` and
    ``data_loader(source, handle) -> ImageDataset`` default to the core's
    loaders; tests inject small ones.
    """

    handle = EventedField[Optional["ModelHandle"]](None)
    model_path = EventedField[Optional[str]](None)
    data = EventedField[Optional["ImageDataset"]](None)
    data_source = EventedField[Optional[str]](None)
    train_source = EventedField[Optional[str]](None)  # the user's own training set (folder/CSV), if opened
    recipe = EventedField[Optional["Recipe"]](None)
    selected_layer = EventedField[Optional[str]](None)
    project_path = EventedField[Optional[Path]](None)
    unsaved = EventedField[bool](False)  # experiments were added since the project was last saved or opened
    interactive_limit = EventedField[Optional[int]](DEFAULT_INTERACTIVE_LIMIT)  # None: measure on every image

    def __init__(self, *, registry: Union["MethodRegistry", Callable[[], "MethodRegistry"]],
                 model_loader: Optional[Callable[..., "ModelHandle"]] = None,
                 data_loader: Optional[Callable[[str, Any], "ImageDataset"]] = None,
                 undo_limit: int = UNDO_LIMIT) -> None:
        self._registry = registry
        self.events = SessionEvents()
        self.changed = FieldEvents(type(self))  # one typed event per field above
        self.experiments = ExperimentLog()
        self._train_cache: Any = None  # ((id(module), source), dataset): loaded once per model and source
        self._subsets = SubsetCache()  # the interactive points' fixed subset of the data
        self.points = PointStore()  # every measured point's .sqz; its folder is chosen on the first point
        self._undo: list[Optional["Recipe"]] = []
        self._redo: list[Optional["Recipe"]] = []
        self._undo_limit = max(1, int(undo_limit))
        self._model_loader = model_loader or self._load_model_with_registry
        self._data_loader = data_loader or _default_data_loader
        self._follow_interactive_images()  # the plot's frontier compares the points on the current images

    @property
    def registry(self) -> "MethodRegistry":
        """The compression methods this session compresses and loads with."""
        if callable(self._registry):
            self._registry = self._registry()
        return self._registry

    # -- model and data -------------------------------------------------
    def _load_model_with_registry(self, path: str, trust: bool = False, **options: Any) -> "ModelHandle":
        from squeezestudio.core.io.loading import load_model  # lazy: torch (see the module's docstring)
        return load_model(path, trust=trust, registry=self.registry, **options)

    def load_model_file(self, path: PathLike, *, trust: bool = False, **options: Any) -> "ModelHandle":
        """Load a model file without changing the session (safe in a worker thread); ``options`` go to the loader."""
        return self._model_loader(str(path), trust=trust, **options)

    def open_model(self, path: PathLike, *, trust: bool = False) -> "ModelHandle":
        """Load a model file and make it current (experiments start afresh)."""
        handle = self.load_model_file(path, trust=trust)
        self.set_model(handle, str(path))
        return handle

    def set_model(self, handle: "ModelHandle", path: Optional[str] = None) -> None:
        """Make ``handle`` the current model; old results no longer apply to it."""
        self.handle = handle
        self.model_path = path if path is not None else (
            str(handle.source_path) if getattr(handle, "source_path", None) else None)
        self.selected_layer = None
        self._train_cache = None
        self.experiments.clear()
        names = list(getattr(handle, "class_names", None) or [])
        self.experiments.chance = 1.0 / len(names) if names else None
        self.points = PointStore()
        self.unsaved = False
        self._undo.clear()
        self._redo.clear()
        self.recipe = None
        self.events.model.emit()
        self.events.recipe.emit(self.recipe)

    def load_data_source(self, source: str, handle: Optional["ModelHandle"] = None) -> "ImageDataset":
        """Load a data set for ``handle`` (default: the current model) without changing the session."""
        handle = handle if handle is not None else self.handle
        if handle is None:
            raise SqueezeStudioError("open a model before opening data, so images are preprocessed for it")
        return self._data_loader(str(source), handle)

    def open_data(self, source: str) -> "ImageDataset":
        """Load ``digits``, an image folder or a CSV list, preprocessed for the model."""
        dataset = self.load_data_source(source)
        self.set_data(dataset, str(source))
        return dataset

    def set_data(self, dataset: "ImageDataset", source: Optional[str]) -> None:
        """Make ``dataset`` the evaluation data; existing metrics came from other data."""
        self.data = dataset
        self.data_source = source
        self._subsets, self._reference_cache = SubsetCache(), []  # they hold the old data's images
        self.experiments.clear()
        self.points = PointStore()
        self.unsaved = False
        self.events.data.emit()

    # -- training data (for retraining) --------------------------------
    def training_source(self) -> Optional[str]:
        """Retraining's data: digits' training split, else the user's training set; never the evaluation data."""
        return training_source(self.data_source, self.train_source)

    def set_training_data(self, dataset: "ImageDataset", source: str) -> None:
        """Retrain on ``dataset`` (loaded from ``source`` for the current model)."""
        self.train_source = str(source)
        self._train_cache = ((id(getattr(self.handle, "module", None)), str(source)), dataset)
        self.events.data.emit()

    def open_training_data(self, source: str) -> "ImageDataset":
        """Load a folder or CSV list as the retraining set (File > Open training data...)."""
        dataset = self.load_data_source(source)
        self.set_training_data(dataset, source)
        return dataset

    def training_data(self, handle: Optional["ModelHandle"] = None) -> "ImageDataset":
        """The retraining set for ``handle``, loaded once per (model, source); a sentence when there is none."""
        handle = handle if handle is not None else self.handle
        source = self.training_source()
        if source is None:
            raise SqueezeStudioError("retraining needs training data; open a training set (File > Open "
                                     "training data...) or set the retraining epochs to 0")
        key, cached = (id(getattr(handle, "module", None)), source), self._train_cache
        if cached is None or cached[0] != key:
            cached = (key, self._data_loader(source, handle))
            self._train_cache = cached  # a plain attribute swap: safe from a worker thread
        return cached[1]

    # -- recipe and undo/redo -------------------------------------------
    def set_recipe(self, recipe: Optional["Recipe"], *, record: bool = True) -> None:
        """Make ``recipe`` current; with ``record`` the previous one can be undone."""
        if record:
            self._undo.append(self.recipe)
            del self._undo[:-self._undo_limit]
            self._redo.clear()
        self.recipe = recipe
        self.events.recipe.emit(recipe)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Go back to the previous recipe; False when there is none."""
        if not self._undo:
            return False
        self._redo.append(self.recipe)
        self.recipe = self._undo.pop()
        self.events.recipe.emit(self.recipe)
        return True

    def redo(self) -> bool:
        """Re-apply an undone recipe; False when there is none."""
        if not self._redo:
            return False
        self._undo.append(self.recipe)
        self.recipe = self._redo.pop()
        self.events.recipe.emit(self.recipe)
        return True

    def restore_experiment(self, experiment_id: str) -> Experiment:
        """Make an experiment's recipe current again (clicking its point on the plot)."""
        experiment = self.experiments.find(experiment_id)
        if experiment is None:
            raise SqueezeStudioError(f"there is no experiment {experiment_id} in this session")
        self.set_recipe(None if experiment.is_original else recipe_from_dict(experiment.recipe))
        return experiment

    def select_layer(self, name: Optional[str]) -> None:
        if name != self.selected_layer:
            self.selected_layer = name
            self.events.selection.emit(name)

    # -- evaluation -----------------------------------------------------
    def evaluate_recipe(self, recipe: Any = None, progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None, *, label: str = "",
                        original: bool = False, images: Optional[int] = None) -> Experiment:
        """Compress the model with ``recipe``, measure the .sqz size, evaluate it.

        Safe to run in a worker thread: it reads the current model and data
        once and changes no session state (add the result with
        :meth:`add_experiment` on the caller's thread). ``original=True``
        measures the uncompressed model stored as .sqz (the reference point).
        It is evaluated on the fixed subset of ``images`` images (default:
        :meth:`interactive_images`; the data's length: all of them, labelled
        so); calibration always uses the whole data, so the compressed model
        does not depend on the subset.
        """
        handle, full = self.handle, self.data
        if handle is None:
            raise SqueezeStudioError("open a model before evaluating a recipe")
        if full is None:
            raise SqueezeStudioError("open a data set (File > Open data) before evaluating a recipe")
        data = self.interactive_data(images, full)
        from squeezestudio.core.measure.measure_recipe import measure_recipe, retrain_config, retrains  # lazy: torch
        from squeezestudio.core.compression.pipeline import needs_calibration

        if original or recipe is None:
            recipe_obj = recipe_from_dict({})
        else:
            recipe_obj = recipe_from_dict(recipe) if isinstance(recipe, dict) else recipe
        calibration = train = None
        if not original and needs_calibration(recipe_obj, self.registry):
            report(progress, 0.0, "preparing calibration images")
            calibration = self.calibration_images(handle, full)
        config = None if original else retrain_config(recipe_obj)
        if not original and retrains(recipe_obj):
            report(progress, 0.0, "loading training data")
            train = self.training_data(handle)
        report(progress, 0.0, "compressing")
        measured = measure_recipe(handle, recipe_obj, data, registry=self.registry,
                                  reference=None if original else self._reference_top1(handle, data, cancel),
                                  calibration=calibration, with_size_report=True, train_data=train,
                                  teacher=handle.module, progress=progress, cancel=cancel)
        cm, sizes, size, result = (measured.compressed, measured.size_report, measured.size_bytes,
                                   measured.evaluation)
        metrics = {**metrics_of(result), **image_metrics(data, full)}
        if original and metrics.get("agreement") is None:
            metrics["agreement"] = 1.0
        recipe_dict = {} if original else recipe_to_dict(recipe)
        summary = "original" if original else recipe_summary(recipe_dict, method_defaults(self.registry)) + (
            f" + retrain {config.epochs} ep" if config is not None else "")
        if len(data) == len(full) and subset_size(len(full), self.interactive_limit) < len(full):
            summary = full_label(summary, len(full))  # interactive points use a subset: this one did not
        experiment = Experiment(id=new_experiment_id(), recipe=recipe_dict, label=label or summary,
                                size_bytes=size, metrics=metrics, is_original=original,
                                compressed=cm, size_report=sizes)
        report(progress, 1.0, "done")
        return experiment

    def _reference_top1(self, handle: Any, data: Any, cancel: Optional[CancelToken]) -> Any:
        """The original model's predictions on the data, computed once per (model, data) pair.

        Two pairs are kept: the interactive subset's and the full data's, so
        measuring one point on all images does not cost the next slider move.
        """
        from squeezestudio.core.measure.evaluation import reference_predictions  # lazy: torch

        cached = list(getattr(self, "_reference_cache", ()))
        for module, dataset, preds in cached:
            if module is handle.module and dataset is data:
                return preds
        preds = reference_predictions(handle.module, data, cancel=cancel)
        self._reference_cache = ([(handle.module, data, preds)] + cached)[:2]  # an attribute swap: thread-safe
        return preds

    def calibration_images(self, handle: Any = None, data: Any = None, count: int = CALIBRATION_IMAGES) -> Any:
        """Images for substitution methods (Fire): the training set (digits' split or the user's), else the data's.

        The rule is :func:`squeezestudio.core.data.calibration.calibration_images`, shared with the CLI.
        """
        handle = handle if handle is not None else self.handle
        data = data if data is not None else self.data
        train = None
        if handle is not None and self.training_source() is not None:
            try:
                train = self.training_data(handle)
            except SqueezeStudioError:
                train = None
        images = calibration_images(train, data, count)
        if images is None:
            raise SqueezeStudioError("open a data set before substituting layers: they are fitted on its images")
        return images

    def known_result(self, recipe: Any) -> Optional[Experiment]:
        """An experiment that already measured ``recipe``, so it need not be measured again.

        A recipe that compresses nothing is the original model; otherwise the
        newest experiment with an identical recipe, measured on the images
        interactive points are measured on now. None: evaluate it.
        """
        wanted = recipe_to_dict(recipe)
        if not any(wanted.get(k) for k in ("methods", "layers", "architecture")):
            return self.current_original()
        images = self.interactive_images()
        for experiment in reversed(self.experiments.list()):
            if (not experiment.is_original and experiment.recipe == wanted
                    and (images is None or same_images(experiment, images))):
                return experiment
        return None

    def add_experiment(self, experiment: Experiment) -> Experiment:
        """Add a measured point and store its model's exact .sqz bytes in the point store."""
        self.experiments.append(experiment)
        if not experiment.is_original and experiment.compressed is not None:
            self._store_point(experiment, experiment.compressed, experiment.size_report)
        self.unsaved = True
        return experiment

    # -- project files --------------------------------------------------
    def project_dict(self, points_folder: Optional[str] = None) -> dict[str, Any]:
        d = {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "saved_at": time.time(),
             "model_path": self.model_path, "data_source": self.data_source, "train_source": self.train_source,
             "recipe": recipe_to_dict(self.recipe), "selected_layer": self.selected_layer,
             **model_settings(self.handle), **self.experiments.to_dict()}
        if points_folder is not None:
            d["points_folder"] = points_folder
        return d

    def save_project(self, path: PathLike) -> int:
        """Write the project as JSON (atomically) and its points' .sqz files beside it; returns JSON bytes.

        The points go to ``<name>.points/`` next to ``<name>.sqproj`` (the
        project file refers to it by that relative name, so the two move together).
        """
        path = Path(path)
        folder = points_folder_for(path)
        if self.points.folder is not None or len(self.points.ids()):
            self.points.set_folder(folder)
        data = json.dumps(self.project_dict(folder.name), indent=2, sort_keys=True).encode("utf-8")
        written = atomic_write_bytes(path, data)
        self.project_path = path
        self.unsaved = False
        self.events.project.emit(path)
        return written

    def open_project(self, path: PathLike, *, trust: bool = False) -> None:
        """Reopen a project: its model, data, current recipe and every experiment."""
        d = read_project(path)
        if d.get("model_path"):
            self.open_model(d["model_path"], trust=trust)
            apply_model_settings(self.handle, d)
        if d.get("data_source") and self.handle is not None:
            self.open_data(d["data_source"])
        if d.get("train_source") and self.handle is not None:
            self.open_training_data(d["train_source"])
        self.experiments.replace_all(ExperimentLog.from_dict(d).list())
        folder = d.get("points_folder")
        self.points = PointStore()
        if isinstance(folder, str) and folder:
            self.points.set_folder(Path(path).parent / folder, move=False)  # absolute paths stay absolute
        self.unsaved = False
        recipe = d.get("recipe") or None
        self._undo.clear()
        self._redo.clear()
        self.recipe = None if recipe is None else recipe_from_dict(recipe)
        self.events.recipe.emit(self.recipe)
        self.select_layer(d.get("selected_layer"))
        self.project_path = Path(path)
        self.events.project.emit(Path(path))

    def autosave(self, path: Optional[PathLike] = None) -> Path:
        """Save a recovery copy (default: the autosave folder); returns its path."""
        target = Path(path) if path is not None else default_autosave_dir() / "autosave.sqproj"
        target.parent.mkdir(parents=True, exist_ok=True)
        d = self.project_dict(None if self.points.folder is None else str(self.points.folder.resolve()))
        d["autosaved_at"] = time.time()
        atomic_write_bytes(target, json.dumps(d, indent=2, sort_keys=True).encode("utf-8"))
        return target

    def restore_autosave(self, info: AutosaveInfo, *, trust: bool = False) -> None:
        """Open a recovery copy found by :func:`find_autosave`."""
        self.open_project(info.path, trust=trust)
        self.project_path = None  # a recovery copy is not the user's project file


def _default_data_loader(source: str, handle: Any) -> Any:
    from squeezestudio.core.data.dataset import PreprocessSpec  # lazy: torch (see the module's docstring)
    from squeezestudio.core.data.folders import class_names_from_data, load_dataset, match_classes
    # Links are followed: in the window the user picked or dropped this folder, often a subset made of links
    # into a full set (the CLI asks for --follow-links, since a script may be pointed at anything).
    dataset = load_dataset(source, PreprocessSpec.from_input_spec(handle.input_spec), follow_links=True)
    names = class_names_from_data(handle.class_names, dataset)
    if names is not None:
        handle.class_names = names  # the model had none: the folders name its classes
    return match_classes(dataset, list(handle.class_names))
