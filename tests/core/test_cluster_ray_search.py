"""The byte-budget search with its measurements on a local Ray instance of two CPUs (the ``cluster`` extra).

The bundled LeNet-300-100 on digits with a small setting grid: the table's
cells and the candidates measured by Ray workers must be exactly the local
ones, so the search chooses the same recipe and reports the same numbers.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import pytest

from squeezestudio.cli.main import main
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.errors import ClusterError
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.search.budget_search import search_budget, split_selection
from squeezestudio.core.search.layer_table import measure_layer_table, table_to_dict
from squeezestudio.core.search.settings import LayerSetting, setting_grid

pytest.importorskip("ray", reason="Ray is not installed: pip install 'squeezestudio[cluster]' runs these")

from squeezestudio.core.measure.point_log import PointLog  # noqa: E402
from squeezestudio.core.cluster.ray_search import RaySearchMeasurer  # noqa: E402

LENET = str(demo_model_path("lenet300_100"))
SETTINGS = setting_grid(sparsities=(0.0, 0.9), cluster_bits=(2, 4), quant_bits=())


@lru_cache(maxsize=1)
def lenet():
    handle = load_model(LENET, registry=default_registry())
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    return handle, load_dataset("digits:train", spec), load_dataset("digits", spec)


def test_the_search_on_ray_measures_and_chooses_what_the_local_search_does(ray_cluster, tmp_path):
    handle, train, val = lenet()
    options = dict(registry=default_registry(), report_data=val, settings=SETTINGS)
    local = search_budget(handle, train, budget_bytes=120_000, **options)
    log = PointLog(tmp_path / "search.points")
    measurer = RaySearchMeasurer(ray_cluster, log=log)
    remote = search_budget(handle, train, budget_bytes=120_000, measurer=measurer, **options)
    assert remote.table.entries == local.table.entries and remote.table.base_bytes == local.table.base_bytes
    assert remote.candidates == local.candidates  # labels, recipes, exact sizes, top-1, loss, agreement
    assert remote.choice == local.choice and remote.recipe == local.recipe
    assert remote.final.size_bytes == local.final.size_bytes <= 120_000
    assert remote.final.sqz_bytes == local.final.sqz_bytes
    cells = 3 * (len(SETTINGS) - 1)
    assert measurer.resumed == 0 and measurer.sent == cells + len(local.candidates)
    assert len(log.measured()) == cells + len({json.dumps(c.recipe, sort_keys=True) for c in local.candidates})

    again = RaySearchMeasurer(ray_cluster, log=log)  # a rerun: everything comes from the results file
    rerun = search_budget(handle, train, budget_bytes=120_000, measurer=again, **options)
    assert again.sent == 0 and again.resumed == measurer.sent
    assert rerun.candidates == local.candidates and rerun.final.sqz_bytes == local.final.sqz_bytes


def test_a_cell_that_cannot_be_measured_stops_the_search_with_its_reason(ray_cluster, tmp_path):
    handle, train, _ = lenet()
    _, selection = split_selection(train)
    log = PointLog(tmp_path / "bad.points")
    with pytest.raises(ClusterError, match=r"fc1: prune 1\.5.*sparsity.*rerun measures only the rest"):
        RaySearchMeasurer(ray_cluster, log=log).table(handle, selection, ["fc1"],
                                                      [LayerSetting(0.5), LayerSetting(1.5)],
                                                      registry=default_registry())
    assert sorted(e["status"] for e in log.measured().values()) == ["failed", "measured"]


def _report(text: str) -> list[str]:
    """What the search printed, without its wall time."""
    return [re.sub(r"\(search took [\d.]+ s\)", "", line) for line in text.splitlines()]


def test_the_cli_search_prints_and_writes_the_same_with_ray_local(ray_cluster, tmp_path, capsys):
    handle, train, _ = lenet()
    _, selection = split_selection(train)  # the split the command makes
    table = measure_layer_table(handle, selection, ["fc1", "fc2", "fc3"], SETTINGS, registry=default_registry())
    (tmp_path / "table.json").write_text(json.dumps(table_to_dict(table)))
    budget = table.base_bytes // 8
    runs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local", "--workers", "2"])):
        assert main(["search", LENET, "--budget-bytes", str(budget), "--table", str(tmp_path / "table.json"),
                     "--save-recipe", str(tmp_path / f"{name}.yaml"), "-o", str(tmp_path / f"{name}.sqz")]
                    + extra) == 0
        runs[name] = _report(capsys.readouterr().out.replace(str(tmp_path / f"{name}."), "OUT."))
    assert runs["ray"] == runs["local"]
    assert any(re.search(r"measured on digits:val: [\d,]+ bytes", line) for line in runs["ray"])
    assert (tmp_path / "ray.yaml").read_bytes() == (tmp_path / "local.yaml").read_bytes()
    assert (tmp_path / "ray.sqz").read_bytes() == (tmp_path / "local.sqz").read_bytes()
    assert len(PointLog(tmp_path / "ray.points").measured()) > 0  # the candidates, kept for a rerun
