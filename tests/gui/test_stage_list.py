"""The Compression dock's stage list: the controls edit one stage, the recipe holds them all."""

from __future__ import annotations

import os

from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.gui.qt_stage_list import QtStageList


def test_stage_list_builds_a_staged_recipe_and_one_stage_keeps_todays_format(qtbot, tmp_path):
    stages = QtStageList()
    qtbot.addWidget(stages)
    shown = []
    stages.stageSelected.connect(shown.append)
    one = stages.combined({"version": 1, "methods": {"prune": {"sparsity": 0.9}}, "layers": {},
                           "finetune": {"epochs": 3}})
    assert "stages" not in one and one["methods"] == {"prune": {"sparsity": 0.9}}
    stages.add_stage()
    assert shown[-1] == {"methods": {}, "layers": {}}  # the controls now edit the new, empty stage
    two = stages.combined({"version": 1, "methods": {"cluster": {"bits": 4}}, "layers": {}})
    assert [list(s["methods"]) for s in two["stages"]] == [["prune"], ["cluster"]]
    assert recipe_from_dict(two).stages[0].finetune == {"epochs": 3}
    assert stages.list.item(0).text() == "1. prune(sparsity=0.9) + retrain 3 ep"
    stages.list.setCurrentRow(0)
    assert shown[-1]["methods"] == {"prune": {"sparsity": 0.9}}
    loaded = stages.load_file("resources/recipes/deep_compression_lenet300.yaml")
    assert stages.list.count() == 2 and stages.list.item(1).text().startswith("2. cluster (4-bit")
    assert stages.recipe()["stages"] == loaded["stages"]
    stages.remove_stage()
    assert "stages" not in stages.recipe()  # back to one stage: today's format
    if os.environ.get("SQUEEZESTUDIO_SCREENSHOTS"):
        stages.load_file("resources/recipes/deep_compression_lenet300.yaml")
        stages.resize(420, 150)
        stages.grab().save(os.environ["SQUEEZESTUDIO_SCREENSHOTS"])
