"""The Compression dock's stage list: a staged recipe (prune -> retrain -> cluster -> retrain) in the GUI.

The method controls below the list always edit ONE stage, the selected one;
the list shows every stage's summary. With one stage the recipe is written
in today's one-stage format, so nothing changes for a user who never adds a
stage. "Add stage" starts an empty stage after the selected one (Deep
Compression: prune + retrain in stage 1, cluster + retrain in stage 2);
"Load…" reads a recipe file (staged or not), e.g. resources/recipes/*.yaml.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget)

from squeezestudio.core.session.experiments import recipe_summary

EMPTY_STAGE: dict[str, Any] = {"methods": {}, "layers": {}}


def stage_text(index: int, stage: dict[str, Any], defaults: Mapping[str, Mapping[str, Any]]) -> str:
    """``1. prune(sparsity=0.9) + retrain 10 ep`` (the name first when the stage has one).

    ``defaults`` (method -> {knob: default}) decides which knobs are shown: every non-default one.
    """
    epochs = (stage.get("finetune") or {}).get("epochs")
    body = recipe_summary(stage, defaults) + (f" + retrain {epochs} ep" if epochs else "")
    name = stage.get("name")
    return f"{index + 1}. {name}: {body}" if name else f"{index + 1}. {body}"


class QtStageList(QWidget):
    """The stages of the current recipe; the selected one is what the method controls edit."""

    stageSelected = Signal(dict)   # the stage the controls should now show
    stagesChanged = Signal(dict)   # the whole recipe changed here (a stage added, removed, a file loaded)

    def __init__(self, parent: Optional[QWidget] = None, *,
                 defaults: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
        super().__init__(parent)
        self.defaults: Mapping[str, Mapping[str, Any]] = defaults or {}
        self.stages: list[dict[str, Any]] = [copy.deepcopy(EMPTY_STAGE)]
        self.name = ""
        self.list = QListWidget()
        self.list.setMaximumHeight(96)
        self.list.setToolTip("Stages run in order, each on the model the previous one left (masks and shared "
                             "weights kept). The controls below edit the selected stage.")
        self.list.currentRowChanged.connect(self._selected)
        self.add_button = QPushButton("Add stage")
        self.add_button.setToolTip("A new stage after the selected one, e.g. cluster + retrain after prune + retrain")
        self.add_button.clicked.connect(self.add_stage)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_stage)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Read a recipe file (.yaml/.json), staged or not")
        self.load_button.clicked.connect(self.ask_load)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.load_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(QLabel("Stages"))
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self._redraw(0)

    # -- recipe <-> stages ----------------------------------------------
    @property
    def current(self) -> int:
        return max(0, min(self.list.currentRow(), len(self.stages) - 1))

    def combined(self, edited: dict[str, Any]) -> dict[str, Any]:
        """The whole recipe once the controls' ``edited`` stage replaces the selected one."""
        stage = {k: v for k, v in edited.items() if k != "version"}
        keep = self.stages[self.current].get("name")
        if keep:
            stage["name"] = keep
        self.stages[self.current] = stage
        self._redraw(self.current)
        return self.recipe()

    def recipe(self) -> dict[str, Any]:
        """One stage: today's format; several: ``{"version": 1, "stages": [...]}``."""
        if len(self.stages) == 1:
            one = {"version": 1, **{k: v for k, v in self.stages[0].items() if k != "name"}}
            return {**one, "name": self.name} if self.name else one
        out: dict[str, Any] = {"version": 1, "stages": copy.deepcopy(self.stages)}
        if self.name:
            out["name"] = self.name
        return out

    def show_recipe(self, recipe: Optional[dict[str, Any]]) -> dict[str, Any]:
        """Show ``recipe``'s stages (a clicked point, undo); returns the stage the controls should show."""
        recipe = recipe or {}
        stages = recipe.get("stages")
        keep = self.current
        if isinstance(stages, list) and stages:
            self.stages = [{k: v for k, v in copy.deepcopy(s).items() if k != "version"} for s in stages]
        else:
            self.stages = [{k: v for k, v in copy.deepcopy(recipe).items() if k not in ("version", "name")}]
        self.name = str(recipe.get("name") or "")
        self._redraw(min(keep, len(self.stages) - 1))
        return self.stages[self.current]

    # -- actions ----------------------------------------------------------
    def add_stage(self) -> None:
        self.stages.insert(self.current + 1, copy.deepcopy(EMPTY_STAGE))
        self._redraw(self.current + 1)
        self.stageSelected.emit(self.stages[self.current])
        self.stagesChanged.emit(self.recipe())

    def remove_stage(self) -> None:
        if len(self.stages) <= 1:
            self.stages = [copy.deepcopy(EMPTY_STAGE)]
            self._redraw(0)
        else:
            del self.stages[self.current]
            self._redraw(min(self.current, len(self.stages) - 1))
        self.stageSelected.emit(self.stages[self.current])
        self.stagesChanged.emit(self.recipe())

    def ask_load(self, chooser: Optional[Callable[[], str]] = None) -> None:
        path = chooser() if chooser else QFileDialog.getOpenFileName(
            self, "Load recipe", "", "Recipes (*.yaml *.yml *.json);;All files (*)")[0]
        if path:
            self.load_file(path)

    def load_file(self, path: str) -> dict[str, Any]:
        """Read a recipe file into the list (errors are the core's one-sentence RecipeError)."""
        from squeezestudio.core.compression.recipe import load_recipe, recipe_to_dict

        recipe = recipe_to_dict(load_recipe(path))
        self.list.blockSignals(True)
        self.list.setCurrentRow(0)
        self.list.blockSignals(False)
        stage = self.show_recipe(recipe)
        self.stageSelected.emit(stage)
        self.stagesChanged.emit(self.recipe())
        return recipe

    def _selected(self, row: int) -> None:
        if 0 <= row < len(self.stages):
            self.stageSelected.emit(self.stages[row])

    def _redraw(self, selected: int) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for i, stage in enumerate(self.stages):
            self.list.addItem(stage_text(i, stage, self.defaults))
        self.list.setCurrentRow(selected)
        self.list.blockSignals(False)
        self.remove_button.setEnabled(len(self.stages) > 1)


def wrap_with_stages(stages: QtStageList, controls: QWidget) -> QWidget:
    """The dock's widget: the stage list above the method controls."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(stages)
    layout.addWidget(controls, 1)
    return box
