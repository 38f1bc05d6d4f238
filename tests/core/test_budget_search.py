"""The byte-budget search on the bundled LeNet-300-100: exact sizes, choices made on training data only."""

from __future__ import annotations

import json

import pytest
import torch

from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import recipe_to_dict
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.search.budget_search import search_budget, split_selection
from squeezestudio.core.search.measurer import SearchMeasurer
from squeezestudio.core.search.layer_table import measure_layer_table, table_from_dict, table_to_dict
from squeezestudio.core.search.settings import recipe_for, setting_grid
from squeezestudio.core.compression.registry import default_registry

SETTINGS = setting_grid(sparsities=(0.0, 0.8, 0.95), cluster_bits=(2, 4), quant_bits=())


@pytest.fixture(scope="module")
def lenet():
    handle = load_model(str(demo_model_path("lenet300_100")), registry=default_registry())
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    train, val = load_dataset("digits:train", spec), load_dataset("digits", spec)
    _, selection = split_selection(train)
    table = measure_layer_table(handle, selection, ["fc1", "fc2", "fc3"], SETTINGS, registry=default_registry())
    return handle, train, val, table


def test_byte_costs_are_the_codecs_and_predict_whole_recipes(lenet):
    handle, _, _, table = lenet
    assert table.base_bytes == len(encode_sqz(compress(handle, recipe_for({}), registry=default_registry())))
    choice = {"fc1": SETTINGS[-1], "fc2": SETTINGS[4], "fc3": SETTINGS[1]}
    real = len(encode_sqz(compress(handle, recipe_for(choice), registry=default_registry())))
    # the layers share only the header (its JSON and padding): the sum of per-layer changes is off by bytes, not kB
    assert abs(real - table.predicted_bytes(choice)) <= 128
    assert table.cost("fc1", SETTINGS[-1]) < table.cost("fc1", SETTINGS[1]) < 0  # pruning+2 bits saves most
    assert table_from_dict(table_to_dict(table)).entries == table.entries


def test_a_compact_recipe_is_predicted_with_its_own_recipe_text(lenet):
    handle, _, _, table = lenet
    uniform = {layer: SETTINGS[4] for layer in ("fc1", "fc2", "fc3")}  # cluster 4b everywhere
    compact = table_from_dict(table_to_dict(table))
    compact.compact = True
    real = len(encode_sqz(compress(handle, recipe_for(uniform, compact=True), registry=default_registry())))
    # the cells each name their layer in an override; the compact recipe names the setting once
    assert table.predicted_bytes(uniform) - real > 60
    assert abs(compact.predicted_bytes(uniform) - real) <= 16


def test_search_fits_the_budget_and_never_looks_at_the_report_data(lenet):
    handle, train, val, table = lenet
    budget = table.base_bytes // 6
    result = search_budget(handle, train, budget_bytes=budget, report_data=val, table=table, settings=SETTINGS, registry=default_registry())
    assert result.final.size_bytes <= budget and result.selected.size_bytes <= budget
    assert result.final.size_bytes == len(encode_sqz(result.final.compressed, registry=default_registry()))
    assert result.final.evaluation.top1 > 0.8
    scrambled = val.subset(torch.arange(len(val)))
    scrambled.labels = scrambled.labels[torch.randperm(len(val), generator=torch.Generator().manual_seed(3))]
    again = search_budget(handle, train, budget_bytes=budget, report_data=scrambled, table=table, settings=SETTINGS, registry=default_registry())
    assert again.choice == result.choice  # the reported data's labels played no part in choosing
    assert again.final.evaluation.top1 < 0.3
    uniform = [c for c in result.candidates if c.label.startswith("uniform") and c.size_bytes <= budget]
    assert all(result.selected.rank_key() <= c.rank_key() for c in uniform)
    # every uniform setting predicted to fit was measured, not only those the additive model liked best
    predicted = [s for s in SETTINGS if table.predicted_bytes({layer: s for layer in table.entries}) <= budget]
    assert {c.label for c in result.candidates if c.label.startswith("uniform")} >= {f"uniform {s.label()}"
                                                                                     for s in predicted}
    assert any(line.startswith("fc1") for line in result.choice_lines())


def test_max_drop_keeps_the_held_out_accuracy_and_cancel_stops(lenet):
    handle, train, _, table = lenet
    result = search_budget(handle, train, max_drop=1.0, table=table, settings=SETTINGS, registry=default_registry())
    assert result.selected.top1 >= table.base_top1 - 0.01
    assert result.selected.size_bytes < table.base_bytes / 2
    token = CancelToken()

    def cancel_midway(fraction: float, message: str = "") -> None:
        if fraction > 0.65:
            token.cancel()
    with pytest.raises(Cancelled):
        search_budget(handle, train, budget_bytes=table.base_bytes // 4, table=table, settings=SETTINGS,
                      progress=cancel_midway, cancel=token, registry=default_registry())


class CountingMeasurer(SearchMeasurer):
    """Counts the candidate recipes really measured (the search's own measurer, nothing replaced)."""

    def __init__(self) -> None:
        super().__init__()
        self.recipes: list[str] = []

    def candidates(self, handle, candidates, data, **kw):
        self.recipes += [json.dumps(recipe_to_dict(recipe), sort_keys=True) for _, recipe in candidates]
        return super().candidates(handle, candidates, data, **kw)


def test_the_drop_ladder_measures_each_recipe_once(lenet):
    handle, train, _, table = lenet
    counting = CountingMeasurer()
    result = search_budget(handle, train, max_drop=1.0, table=table, settings=SETTINGS, measurer=counting,
                           registry=default_registry())
    assert len(counting.recipes) == len(set(counting.recipes)) > 0
    assert len(result.candidates) == len(counting.recipes)


def test_impossible_or_unclear_goals_are_one_sentence(lenet):
    handle, train, _, table = lenet
    with pytest.raises(DataError, match="smallest it can make"):
        search_budget(handle, train, budget_bytes=1000, table=table, settings=SETTINGS, registry=default_registry())
    with pytest.raises(DataError, match="either a byte budget"):
        search_budget(handle, train, table=table, registry=default_registry())
    with pytest.raises(DataError, match="at least 4 images"):
        search_budget(handle, train.subset(torch.arange(2)), budget_bytes=10**6, registry=default_registry())


def test_a_per_layer_recipe_must_beat_the_best_uniform_one_by_more_than_noise():
    from squeezestudio.core.search.budget_search import _clearly_better
    from squeezestudio.core.search.candidates import CandidateResult

    def scored(top1: float) -> CandidateResult:
        return CandidateResult(label="x", recipe={}, size_bytes=1, top1=top1, loss=0.1, agreement=None)
    # 431 images at 99.77%: one standard error is about one image
    assert not _clearly_better(scored(430 / 431), scored(430 / 431), 431)
    assert not _clearly_better(scored(430 / 431), scored(429 / 431), 431)
    assert _clearly_better(scored(430 / 431), scored(427 / 431), 431)
    # at 85% the noise is larger: 1.7 points
    assert not _clearly_better(scored(0.865), scored(0.85), 431)
    assert _clearly_better(scored(0.88), scored(0.85), 431)
