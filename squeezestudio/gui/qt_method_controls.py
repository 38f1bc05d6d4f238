"""Compression controls generated from the registered methods' configs.

A global section holds one checkable group per method (ticked = applied to
every layer it fits), its knobs built by :class:`QtParamEditor` and its
description as tooltip, then the "Retraining" group (the recipe's
``finetune`` section, :mod:`squeezestudio.gui.qt_retraining_controls`).
An override panel (``layer_box``; the main window shows it in the Layers dock,
beside the selection) edits the selected layers: for each method "as global",
"off for this layer" or "custom" settings, applied to every selected layer at
once. ``overridesChanged`` carries the names of the layers that have overrides,
so the layer chart and table can mark them.
Every change restarts a short timer; when it fires ``recipeChanged`` carries
the recipe as a dict in the recipe file layout (``{"version": 1, "methods": ...,
"layers": ..., "finetune": ...}``, see :mod:`squeezestudio.core.compression.recipe`), so dragging a
slider produces one evaluation, not fifty.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QLabel, QScrollArea, QVBoxLayout,
                               QWidget)

from squeezestudio.core.compression.config import config_params
from squeezestudio.gui.qt_param_editors import QtParamEditor
from squeezestudio.gui.qt_retraining_controls import QtRetrainingControls, retraining_note
from squeezestudio.core.compression.registry import default_registry

DEBOUNCE_MS = 120  # long enough to merge a slider drag into one evaluation, short enough to feel live
RECIPE_VERSION = 1
INHERIT, DISABLE, CUSTOM = "inherit", "disable", "custom"


FIRST_SHOWN = ("prune", "cluster", "quantize")
"""Deep Compression's three stages lead the panel; substitutions and plugins follow."""


def display_order(methods: Sequence[Any]) -> list[Any]:
    """``methods`` with the built-in pruning, clustering and quantization first (stable otherwise)."""
    rank = {name: i for i, name in enumerate(FIRST_SHOWN)}
    return sorted(methods, key=lambda m: rank.get(getattr(m, "name", ""), len(rank)))


def default_methods() -> list[Any]:
    """The registered methods (built-ins and plugins), in the order they run."""
    return list(default_registry().methods())


class QtMethodForm(QWidget):
    """The knobs of one method's config as a form."""

    changed = Signal()

    def __init__(self, method: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.method = method
        self.editors: dict[str, QtParamEditor] = {}
        form = QFormLayout(self)
        form.setContentsMargins(4, 2, 4, 2)
        for spec in config_params(method.config_class):
            editor = QtParamEditor(spec)
            editor.changed.connect(self.changed)
            label = QLabel(spec.name.replace("_", " "))
            label.setToolTip(spec.help)
            form.addRow(label, editor)
            self.editors[spec.name] = editor

    def values(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Show ``values``; knobs not mentioned go back to their defaults."""
        for name, editor in self.editors.items():
            editor.set_value(values.get(name, editor.spec.default))


class QtMethodControls(QWidget):
    """Global method settings plus the selected layer's overrides."""

    recipeChanged = Signal(dict)
    overridesChanged = Signal(object)  # the set of layer names with per-layer overrides

    def __init__(self, methods: Optional[Sequence[Any]] = None, parent: Optional[QWidget] = None,
                 debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.methods = display_order(list(methods) if methods is not None else default_methods())
        self.layer: Optional[str] = None  # the primary selected layer (whose overrides the panel shows)
        self.selected_layers: list[str] = []  # every selected layer: an edit applies to all of them
        self.overrides: dict[str, dict[str, Optional[dict[str, Any]]]] = {}
        self._quiet = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self._fire)

        inner = QWidget()
        layout = QVBoxLayout(inner)
        self.groups: dict[str, QGroupBox] = {}
        self.forms: dict[str, QtMethodForm] = {}
        for method in self.methods:
            group = QGroupBox(getattr(method, "label", method.name))
            group.setCheckable(True)
            group.setChecked(False)
            group.setToolTip(getattr(method, "description", ""))
            form = QtMethodForm(method)
            QVBoxLayout(group).addWidget(form)
            group.toggled.connect(self._changed)
            form.changed.connect(self._changed)
            layout.addWidget(group)
            self.groups[method.name] = group
            self.forms[method.name] = form
        self._make_exclusive()
        self.retraining = QtRetrainingControls()
        self.retraining.changed.connect(self._changed)
        layout.addWidget(self.retraining)
        self._session: Any = None
        self._jobs: Any = None

        self.layer_box = QGroupBox("Selected layer: none")
        self.layer_box.setToolTip("Settings here apply only to the layer selected in the layer table")
        layer_layout = QVBoxLayout(self.layer_box)
        self.layer_modes: dict[str, QComboBox] = {}
        self.layer_forms: dict[str, QtMethodForm] = {}
        for method in self.methods:
            mode = QComboBox()
            mode.addItem(f"{getattr(method, 'label', method.name)}: as global", INHERIT)
            mode.addItem(f"{getattr(method, 'label', method.name)}: off for this layer", DISABLE)
            mode.addItem(f"{getattr(method, 'label', method.name)}: custom", CUSTOM)
            form = QtMethodForm(method)
            form.setVisible(False)
            mode.currentIndexChanged.connect(self._layer_changed)
            form.changed.connect(self._layer_changed)
            layer_layout.addWidget(mode)
            layer_layout.addWidget(form)
            self.layer_modes[method.name] = mode
            self.layer_forms[method.name] = form
        self.inner_layout = layout
        layout.addWidget(self.layer_box)
        layout.addStretch(1)
        self.set_layer(None)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _make_exclusive(self) -> None:
        """Methods that cannot share a layer (k-means and uniform quantization): ticking one unticks the other."""
        for method in self.methods:
            others = [o for o in getattr(method, "exclusive_with", ()) if o in self.groups and o != method.name]
            if not others:
                continue
            group = self.groups[method.name]
            names = ", ".join(self.groups[o].title() for o in others)
            group.setToolTip(f"{group.toolTip()}\nNot together with {names}: both decide how each weight is "
                             "stored, so ticking this one unticks the other.".strip())
            group.toggled.connect(lambda on, others=others: self._untick(others) if on and not self._quiet else None)

    def _untick(self, names: list[str]) -> None:
        for name in names:
            self.groups[name].setChecked(False)

    # -- recipe <-> widgets ---------------------------------------------
    def recipe_dict(self) -> dict[str, Any]:
        """The recipe the controls show: enabled global methods and layer overrides."""
        methods = {name: self.forms[name].values() for name, g in self.groups.items() if g.isChecked()}
        layers = {layer: dict(entry) for layer, entry in self.overrides.items() if entry}
        recipe: dict[str, Any] = {"version": RECIPE_VERSION, "methods": methods, "layers": layers}
        finetune = self.retraining.finetune_dict()
        if finetune is not None:
            recipe["finetune"] = finetune
        return recipe

    def set_recipe_dict(self, recipe: Optional[dict[str, Any]]) -> None:
        """Show ``recipe`` (undo, a clicked point) without emitting ``recipeChanged``."""
        recipe = recipe or {}
        self._quiet = True
        try:
            global_part = recipe.get("methods") or {}
            for name, group in self.groups.items():
                group.setChecked(name in global_part)
                if name in global_part:  # an unticked method keeps its settings for when it is ticked again
                    self.forms[name].set_values(global_part.get(name) or {})
            self.overrides = copy.deepcopy({k: dict(v) for k, v in (recipe.get("layers") or {}).items()})
            self.retraining.set_finetune_dict(recipe.get("finetune"))
            self._show_layer()
        finally:
            self._quiet = False
        self.overridesChanged.emit(self.overridden_layers())

    def set_layer(self, layer: Optional[str]) -> None:
        """Point the override panel at ``layer`` alone (None hides its controls)."""
        self.set_layers([layer] if layer else [])

    def set_layers(self, layers: Sequence[str]) -> None:
        """Point the override panel at ``layers`` (the first is shown; edits apply to all)."""
        layers = [name for name in dict.fromkeys(layers) if name]
        self.selected_layers = layers
        self.layer = layers[0] if layers else None
        if not layers:
            title = "Selected layer: none (pick one or more in the layer table)"
        elif len(layers) == 1:
            title = f"Selected layer: {layers[0]}"
        else:
            shown = ", ".join(layers[:3]) + (", …" if len(layers) > 3 else "")
            title = f"{len(layers)} selected layers ({shown}): a change applies to all of them"
        self.layer_box.setTitle(title)
        self._quiet = True
        try:
            self._show_layer()
        finally:
            self._quiet = False

    def take_layer_panel(self) -> QWidget:
        """The override panel, moved out of these controls (to sit beside the layer table)."""
        self.inner_layout.removeWidget(self.layer_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.layer_box)
        return scroll

    def overridden_layers(self) -> set[str]:
        """Names of the layers that have per-layer overrides."""
        return {layer for layer, entry in self.overrides.items() if entry}

    def _show_layer(self) -> None:
        current = self.overrides.get(self.layer or "", {})
        for name, mode in self.layer_modes.items():
            mode.setEnabled(self.layer is not None)
            if name not in current:
                choice = INHERIT
            else:
                choice = DISABLE if current[name] is None else CUSTOM
            mode.setCurrentIndex(mode.findData(choice))
            form = self.layer_forms[name]
            form.set_values(current.get(name) or self.forms[name].values())
            form.setVisible(self.layer is not None and choice == CUSTOM)

    # -- training data for retraining ------------------------------------
    def attach_session(self, session: Any, jobs: Any = None) -> None:
        """Show what ``session`` retrains on, and open training sets for it (in ``jobs`` when given)."""
        self._session, self._jobs = session, jobs
        session.events.data.connect(self.refresh_training_note)
        session.events.model.connect(self.refresh_training_note)
        self.retraining.trainingDataRequested.connect(self.open_training_data)
        self.refresh_training_note()

    def refresh_training_note(self) -> None:
        session = self._session
        source = session.training_source()
        self.retraining.set_note(retraining_note(session), needs_data=source is None)
        self.retraining.open_button.setVisible(source != "digits:train")  # digits bring their own split

    def open_training_data(self, source: str) -> None:
        """Load ``source`` as the session's training set (in a worker when a JobManager was given)."""
        session = self._session
        if session is None:
            return
        if self._jobs is None:
            session.open_training_data(source)
            return
        handle = session.handle
        self.retraining.set_note(f"Loading training data from {source}…")

        def done(dataset: Any) -> None:
            if session.handle is handle:
                session.set_training_data(dataset, source)

        self._jobs.start("training data", lambda progress=None, cancel=None: session.load_data_source(source),
                         on_finished=done, on_failed=lambda message, details: self.retraining.set_note(
                             message, needs_data=True))

    # -- change handling ------------------------------------------------
    def _layer_changed(self, *_: Any) -> None:
        if self._quiet or self.layer is None:
            return
        entry: dict[str, Optional[dict[str, Any]]] = {}
        for name, mode in self.layer_modes.items():
            choice = mode.currentData()
            self.layer_forms[name].setVisible(choice == CUSTOM)
            if choice == DISABLE:
                entry[name] = None
            elif choice == CUSTOM:
                entry[name] = self.layer_forms[name].values()
        for layer in self.selected_layers or [self.layer]:
            if entry:
                self.overrides[layer] = copy.deepcopy(entry)
            else:
                self.overrides.pop(layer, None)
        self.overridesChanged.emit(self.overridden_layers())
        self._changed()

    def _changed(self, *_: Any) -> None:
        if not self._quiet:
            self.timer.start()

    def _fire(self) -> None:
        self.recipeChanged.emit(self.recipe_dict())

    def flush(self) -> None:
        """Emit a pending change now (F5, tests)."""
        if self.timer.isActive():
            self.timer.stop()
            self._fire()
