# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The served process keeps full GC passes off what lives for ever (start-up, loaded models): ``heap.settle``."""

from __future__ import annotations

import gc
import weakref

from test_service_support import wdbc_artifact  # noqa: F401

from medai.serving import heap


class Node:
    pass


def test_settle_collects_garbage_cycles_then_freezes_survivors():
    try:
        garbage = Node()
        garbage.me = garbage  # a reference cycle: only the cyclic collector frees it
        gone = weakref.ref(garbage)
        kept = Node()
        kept.me = kept
        stays = weakref.ref(kept)
        del garbage
        frozen = heap.settle()
        assert gone() is None  # collected before freezing, not frozen as garbage
        # frozen objects can still be freed by reference counting (other threads of the test process do), so the
        # count can only have fallen since settle returned it
        assert 0 < gc.get_freeze_count() <= frozen
        del kept
        gc.collect()
        assert stays() is not None  # frozen: ordinary collections skip it (that is the point)
        heap.settle()  # e.g. after a model was evicted from the cache and another loaded
        assert stays() is None  # unfrozen, then collected
    finally:
        gc.unfreeze()


def test_service_settles_after_start_and_after_each_model_load(monkeypatch, tmp_path, wdbc_artifact):
    from fastapi.testclient import TestClient

    from medai.registry import Registry
    from medai.serving.app import create_app

    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    monkeypatch.delenv("MEDAI_DATABASE_URL", raising=False)
    calls = []
    monkeypatch.setattr(heap, "settle", lambda: calls.append(1) or 0)
    record = Registry().register(wdbc_artifact, name="wdbc")
    app = create_app()
    with TestClient(app):
        assert len(calls) == 1  # start-up
        state = app.state.medai
        state.load_model(record)
        assert len(calls) == 2  # the model's load
        state.load_model(record)
        assert len(calls) == 2  # cached: nothing new to freeze


def _started_models(monkeypatch, tmp_path, artifact, preload, promote):
    from fastapi.testclient import TestClient

    from medai.registry import Registry
    from medai.serving.app import create_app

    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    monkeypatch.delenv("MEDAI_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDAI_PRELOAD_MODELS", preload)
    registry = Registry()
    registry.register(artifact, name="wdbc")
    registry.register(artifact, name="other")
    if promote:
        registry.set_stage("wdbc", 1, "production")
    app = create_app()
    with TestClient(app) as client:
        loaded = sorted(app.state.medai._models)  # before any request
        assert client.get("/health").status_code == 200
    return loaded


def test_service_preloads_production_models_at_start(monkeypatch, tmp_path, wdbc_artifact):
    assert _started_models(monkeypatch, tmp_path, wdbc_artifact, "production", promote=True) == [("wdbc", 1)]


def test_preload_choices(monkeypatch, tmp_path, wdbc_artifact):
    assert _started_models(monkeypatch, tmp_path / "a", wdbc_artifact, "production", promote=False) == []
    assert _started_models(monkeypatch, tmp_path / "b", wdbc_artifact, "all", promote=False) == [
        ("other", 1), ("wdbc", 1)]
    assert _started_models(monkeypatch, tmp_path / "c", wdbc_artifact, "none", promote=True) == []
    # a name that is not registered is logged and skipped: the service still starts and loads the rest
    assert _started_models(monkeypatch, tmp_path / "d", wdbc_artifact, "missing, other", promote=False) == [
        ("other", 1)]
