"""Every point keeps its model: the .sqz point store, eviction to recipe-only, projects (headless)."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.point_store import PointEvicted, PointStore
from squeezestudio.core.session.studio_session import StudioSession, points_folder_for


def _recipe(sparsity, bits=None):
    methods = {"prune": {"sparsity": sparsity}}
    if bits:
        methods["cluster"] = {"bits": bits}
    return {"version": 1, "methods": methods, "layers": {}}


@pytest.fixture
def session():
    torch.manual_seed(0)
    handle = zoo_handle("lenet5", num_classes=10, in_channels=1, input_size=32)
    data = ImageDataset(images=torch.randn(48, 1, 32, 32), labels=torch.randint(0, 10, (48,)),
                        class_names=[str(i) for i in range(10)])
    s = StudioSession(registry=default_registry())
    s.set_model(handle)
    s.set_data(data, "random")
    return s


def _weights(cm):
    return {k: v.clone() for k, v in cm.handle.module.state_dict().items()}


def test_store_keeps_exact_bytes_evicts_oldest_unpinned_and_bounds_memory(tmp_path):
    store = PointStore(tmp_path / "points", limit_bytes=250, memory_models=2)
    for i in range(4):
        store.add(f"p{i}", bytes([i]) * 100, compressed=f"cm{i}")
    # 4 x 100 bytes over a 250-byte limit: the two oldest files go, the newest stay.
    assert store.ids() == ["p2", "p3"] and store.evicted == ["p0", "p1"]
    assert store.disk_bytes() == 200 and store.read_bytes("p3") == bytes([3]) * 100
    assert not store.has("p0") and store.cached("p1") is None
    with pytest.raises(PointEvicted):
        store.read_bytes("p0")
    assert store.cached("p3") == "cm3" and store.cached("p2") == "cm2"
    store.pin("p2")
    store.add("p4", b"x" * 100)
    assert store.ids() == ["p2", "p4"]  # p3 was older than p4 and not pinned; p2 is pinned
    assert len([i for i in ("p0", "p1", "p2", "p3", "p4") if store.cached(i) is not None]) <= 2
    with pytest.raises(Exception):
        store.add("../escape", b"1")


def test_every_point_restores_its_exact_model_without_recomputing(session, monkeypatch):
    points = []
    for s in (0.3, 0.6, 0.9):
        e = session.evaluate_recipe(_recipe(s, 4))
        points.append((e, _weights(e.compressed), encode_sqz(e.compressed, registry=default_registry())))
        session.add_experiment(e)
    for e, _, _ in points:
        e.compressed = None  # as after the log dropped it from memory
    session.points.clear_memory()
    monkeypatch.setattr(session, "evaluate_recipe", lambda *a, **k: pytest.fail("recomputed a stored point"))
    for e, weights, data in points:
        assert session.points.read_bytes(e) == data and len(data) == e.size_bytes
        cm, rebuilt = session.point_model(e)
        assert not rebuilt
        for k, v in cm.handle.module.state_dict().items():
            torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    assert session.points.folder.parent.name == "points"  # the autosave folder's points/, not a project


def test_an_evicted_point_is_rebuilt_exactly_from_its_recipe(session):
    session.points.limit_bytes = 1  # everything but the newest is evicted
    first = session.evaluate_recipe(_recipe(0.5, 3))
    first_bytes = encode_sqz(first.compressed, registry=default_registry())
    session.add_experiment(first)
    session.add_experiment(session.evaluate_recipe(_recipe(0.8)))
    first.compressed = None
    session.points.clear_memory()
    assert not session.has_point_model(first) and first.id in session.points.evicted
    with pytest.raises(PointEvicted):
        session.point_model(first, rebuild=False)
    cm, rebuilt = session.point_model(first)
    assert rebuilt and encode_sqz(cm, registry=default_registry()) == first_bytes  # the same bytes as the first time
    assert session.points.read_bytes(first) == first_bytes


def test_saved_project_keeps_point_files_beside_it_and_reopens_them(session, tmp_path):
    e = session.evaluate_recipe(_recipe(0.7, 4))
    session.add_experiment(e)
    data = session.points.read_bytes(e)
    assert session.unsaved
    project = tmp_path / "work.sqproj"
    session.save_project(project)
    assert not session.unsaved
    assert (points_folder_for(project) / f"{e.id}.sqz").read_bytes() == data
    later = session.evaluate_recipe(_recipe(0.2))
    session.add_experiment(later)  # a point added after saving goes into the project's folder
    assert session.points.path(later).parent == points_folder_for(project)

    reopened = StudioSession(model_loader=lambda path, trust=False: session.handle,
                             data_loader=lambda source, handle: session.data, registry=default_registry())
    session.handle.source_path = None
    reopened.open_project(project)
    again = reopened.experiments.find(e.id)
    cm, rebuilt = reopened.point_model(again)
    assert not rebuilt and encode_sqz(cm, registry=default_registry()) == data
    assert reopened.latest_compressed() is not None


def test_autosave_records_the_point_folder_so_recovery_finds_the_models(session, tmp_path, monkeypatch):
    monkeypatch.setenv("SQUEEZESTUDIO_HOME", str(tmp_path / "home"))
    e = session.evaluate_recipe(_recipe(0.4))
    session.add_experiment(e)
    target = session.autosave()
    recovered = StudioSession(model_loader=lambda path, trust=False: session.handle,
                              data_loader=lambda source, handle: session.data, registry=default_registry())
    recovered.open_project(target)
    assert recovered.points.read_bytes(e.id) == session.points.read_bytes(e)
