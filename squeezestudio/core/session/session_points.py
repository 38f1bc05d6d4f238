"""What a session does with its points' models: store each one's exact .sqz bytes, give it back, rebuild it.

Every measured point keeps its compressed model (issue "Every point is a
model"): its bytes go to the session's :class:`PointStore` (beside a saved
project, in the autosave folder otherwise), and any point can be shown or
exported again from memory, its file, or -- when the store evicted the file --
by measuring its recipe again, which must give the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from squeezestudio.core.atomic_write import PathLike
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.progress import CancelToken, ProgressCallback
from squeezestudio.core.session.experiments import Experiment, new_experiment_id
from squeezestudio.core.session.point_store import PointEvicted, PointStore
from squeezestudio.core.session.project_files import default_autosave_dir

if TYPE_CHECKING:
    from squeezestudio.core.compression.registry import MethodRegistry


def points_folder_for(project: PathLike) -> Path:
    """The folder of a project's point files: ``name.points`` beside ``name.sqproj``."""
    project = Path(project)
    return project.with_name(project.stem + ".points")


class SessionPoints:
    """The point-store half of :class:`~squeezestudio.core.session.studio_session.StudioSession`.

    Expects ``points``, ``registry``, ``project_path``, ``experiments`` and
    ``evaluate_recipe`` on the session it is mixed into.
    """

    points: PointStore
    project_path: Optional[Path]
    registry: "MethodRegistry"

    def _store_point(self, experiment: Experiment, cm: Any, sizes: Any = None) -> None:
        from squeezestudio.core.compression.codec import encode_sqz

        data = getattr(sizes, "file_bytes", b"") or encode_sqz(cm, registry=self.registry)
        if self.points.folder is None:
            self.points.set_folder(self._points_folder())
        self.points.add(experiment, data, cm)

    def _points_folder(self) -> Path:
        """Beside the project file once saved, else this session's folder under the autosave folder."""
        if self.project_path is not None:
            return points_folder_for(self.project_path)
        return default_autosave_dir() / "points" / self._token

    @property
    def _token(self) -> str:
        token = getattr(self, "_session_token", None)
        if token is None:
            token = self._session_token = time.strftime("%Y%m%d-%H%M%S-") + new_experiment_id()[:6]
        return token

    def has_point_model(self, experiment: Experiment) -> bool:
        """True when the point's model is in memory or in the store (no recomputation needed)."""
        return experiment.is_original or experiment.compressed is not None or self.points.has(experiment)

    def point_model(self, experiment: Experiment, *, rebuild: bool = True,
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> tuple[Any, bool]:
        """``(CompressedModel, rebuilt)`` of a point: memory, then its stored file, else its recipe.

        A recipe-only point (its file was evicted) is rebuilt by measuring its
        recipe again, stored again, and reported as rebuilt (``rebuilt`` True);
        with ``rebuild=False`` that case raises :class:`PointEvicted`. The
        original point has no compressed model (None). Safe in a worker thread.
        """
        if experiment.is_original:
            return None, False
        if experiment.compressed is not None:
            return experiment.compressed, False
        try:
            return self.points.get(experiment, registry=self.registry), False
        except PointEvicted:
            if not rebuild:
                raise
        from squeezestudio.core.compression.recipe import recipe_from_dict  # lazy: torch, as in the session

        images = experiment.metric("images")  # the same images: the metrics are part of the file's bytes
        evaluate = self.evaluate_recipe  # type: ignore[attr-defined]
        again = evaluate(recipe_from_dict(experiment.recipe), progress, cancel,
                         images=None if images is None else int(images))
        if again.size_bytes != experiment.size_bytes:
            raise SqueezeStudioError(
                f"rebuilding point {experiment.label} from its recipe gave {again.size_bytes:,} bytes, not the "
                f"{experiment.size_bytes:,} measured; the recipe is not deterministic on this machine")
        self._store_point(experiment, again.compressed, again.size_report)
        return again.compressed, True

    def latest_compressed(self) -> Optional[Experiment]:
        """The newest compressed point whose model can be had without recomputing (for export)."""
        for e in reversed(self.experiments.list()):
            if not e.is_original and self.has_point_model(e):
                return e
        return None
