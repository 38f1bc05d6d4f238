"""Changing the open model's input (its preprocessing) inside a session.

A model opened without the right preprocessing measures the wrong accuracy,
so the GUI's Model input dialog edits it after opening. Two steps, so the
slow one can run in a worker: :func:`prepare_model_input` builds and checks
a new handle without touching the session (safe in a worker; ``probe`` runs
the model once on the new input), and :func:`use_model_input` makes it the
session's model on the GUI thread. Every measured point and the loaded data
were prepared for the old input, so they are dropped; the recipe stays.

:func:`size_for_layout` is the size an ONNX file declares in either layout
(the dialog's size field follows the layout). Also here: what a model
opened without data can do next
(:func:`digits_fit`: the built-in digits suit a 10-class model whose input
they can be resized to).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Optional

from squeezestudio.core.errors import PreprocessingError
from squeezestudio.core.model.input_spec import InputSpec, apply_preprocess_options, parse_preprocess_options

if TYPE_CHECKING:
    from squeezestudio.core.model.handle import ModelHandle
    from squeezestudio.core.session.studio_session import StudioSession

DIGIT_CLASSES = 10
DIGIT_SIDE = 8  # scikit-learn's digits are 8x8 grayscale
DIGITS_MAX_ASPECT = 2.0  # a square digit stretched further than 2:1 is no longer a fair test


def spec_fields(spec: InputSpec) -> dict[str, Any]:
    """``spec`` as the option keys of ``--preprocess FILE.yaml`` (what the dialog's fields show)."""
    return {"input_size": (spec.height, spec.width), "resize": tuple(spec.resize), "mean": tuple(spec.mean),
            "std": tuple(spec.std), "pixel_scale": spec.pixel_scale, "bgr": spec.channel_order == "bgr",
            "grayscale": spec.grayscale, "layout": spec.layout}


def size_for_layout(handle: "ModelHandle", layout: str) -> Optional[tuple[int, int]]:
    """The input size (H, W) an ONNX file declares when its input is read as ``layout``.

    An input shaped [N, 3, 8, 3] is 3 channels of 8x3 as NCHW, 3 channels of
    3x8 as NHWC: switching the layout changes the size the file fixes. None
    when the model is not an ONNX file at hand or the file leaves the size
    open (then the size is the user's to set).
    """
    dims = _declared_dims(handle, layout)
    if dims is None:
        return None
    _, height, width = dims
    return None if height is None or width is None else (height, width)


def channels_for_layout(handle: "ModelHandle", layout: str) -> Optional[int]:
    """The channel count an ONNX file declares when its input is read as ``layout`` (None: not known)."""
    dims = _declared_dims(handle, layout)
    return None if dims is None else dims[0]


def _declared_dims(handle: "ModelHandle", layout: str) -> Optional[tuple[Optional[int], Optional[int], Optional[int]]]:
    """(channels, height, width) of an ONNX file's 4-d input read as ``layout``; None when not an ONNX file at hand."""
    if handle.source_format != "onnx" or handle.source_path is None:
        return None
    from squeezestudio.core.io.loading.onnx_import import declared_input_dims  # lazy: onnx

    dims = declared_input_dims(handle.source_path)
    if len(dims) != 4:
        return None
    return (dims[1], dims[2], dims[3]) if layout == "nchw" else (dims[3], dims[1], dims[2])


def prepare_model_input(session: "StudioSession", raw: Mapping[str, Any], *, probe: bool = True) -> "ModelHandle":
    """A new handle for the session's model with the preprocessing in ``raw``; the session is unchanged.

    ``raw`` holds option keys as in ``--preprocess FILE.yaml`` (text or
    values; an empty ``resize`` means "scale to cover"). The new handle shares
    the model's module. A different layout of an ONNX model changes the
    converted graph, so with ``probe`` the file is converted again. Raises
    :class:`PreprocessingError` (one sentence) when the input contradicts
    the model: a mean/std per channel that does not match, a crop larger
    than the resize, an ONNX file's declared size, or (with ``probe``) a
    size the model cannot take.
    """
    from squeezestudio.core.io.loading.finishing import apply_preprocessing  # lazy: torch
    from squeezestudio.core.model.input_checks import check_model_input

    handle = session.handle
    if handle is None:
        raise PreprocessingError("open a model first; its input is what this sets")
    wants_cover = "resize" in raw and not str(raw["resize"]).strip("()[] ,")
    options = parse_preprocess_options({k: v for k, v in raw.items() if not (k == "resize" and wants_cover)},
                                       "the model input")
    layout = options.get("layout", handle.input_spec.layout)
    relayout = handle.source_format == "onnx" and layout != handle.input_spec.layout
    if relayout and probe:
        if handle.source_path is None:
            raise PreprocessingError("this model's layout was fixed when it was converted; its file is not at hand "
                                     "to convert it again")
        options = {**options, "resize": () if wants_cover else options.get("resize", handle.input_spec.resize)}
        return session.load_model_file(str(handle.source_path), trust=handle.trusted_code,
                                       preprocess=options, class_names=list(handle.class_names))
    start = replace(handle.input_spec, resize=()) if wants_cover else handle.input_spec
    trial = replace(handle, input_spec=start, warnings=list(handle.warnings))
    if relayout:  # the file's declared size is read again on OK: check the fields among themselves only
        trial.input_spec = apply_preprocess_options(start, {k: v for k, v in options.items() if k != "layout"})
    else:
        apply_preprocessing(trial, options)
    spec = trial.input_spec = replace(trial.input_spec, layout=layout)  # an ONNX layout: converted on OK
    if probe:
        try:
            check_model_input(trial.module, spec, handle.name)
        except Exception as exc:  # noqa: BLE001 - the loader's sentence, as a preprocessing error
            raise PreprocessingError(str(exc)) from None
    return trial


def use_model_input(session: "StudioSession", handle: "ModelHandle") -> None:
    """Make ``handle`` (from :func:`prepare_model_input`) the session's model; the recipe stays.

    The points, the point store, undo history and the loaded data were made
    with the old input, so they go; ``data_source`` is kept so the caller
    loads the data again for the new input (and measures a new original point).
    """
    recipe, source = session.recipe, session.data_source
    session.data = None  # preprocessed for the old input: loaded again by the caller
    session.set_model(handle, session.model_path)
    session.data_source = source
    if recipe is not None:
        session.set_recipe(recipe, record=False)


def digits_fit(spec: InputSpec, num_classes: int) -> bool:
    """Whether the built-in 8x8 digits make a fair test set: 10 classes, 1 or 3 channels, near-square input."""
    if num_classes != DIGIT_CLASSES or spec.channels not in (1, 3):
        return False
    short, long = sorted((spec.height, spec.width))
    return short >= DIGIT_SIDE and long <= DIGITS_MAX_ASPECT * short
