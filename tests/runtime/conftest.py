"""Fixtures shared by the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsml.settings import Settings
from tests.fixtures.apps import TEXT_CONFIG, make_client
from tests.fixtures.rq_procs import Procs


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the environment, with MODEL_DIR under tmp_path and no held-out split (which task
    ids a fit sees is the business of the evaluation tests, which set `holdout_fraction` themselves)."""
    return Settings.from_env(env={}, backend_dir=tmp_path).replace(
        model_dir=tmp_path / "models", reload_interval=0.0, holdout_fraction=0.0
    )


@pytest.fixture
def text_config() -> str:
    return TEXT_CONFIG


@pytest.fixture(autouse=True)
def _reset_sample_models():
    from tests.fixtures import sample_models as sm

    sm.CountingModel.built = 0
    sm.CountingModel.fit_calls = []
    sm.SlowPredictModel.running = 0
    sm.SlowPredictModel.peak = 0
    yield
    for held in (sm.SlowPredictModel, sm.SlowSetupModel):
        if held.gate is not None:  # also a test that failed before it let the model go on
            held.gate.set()
            held.gate = None


@pytest.fixture
def procs(tmp_path: Path):
    """Subprocesses one test starts (workers, servers: tests/fixtures/rq_procs.py), stopped by pid at its end."""
    p = Procs(tmp_path)
    yield p
    p.stop_all()


@pytest.fixture
def serve(settings):
    """serve(ModelClass, **settings_overrides) -> (app, test_client); queues closed afterwards."""
    apps = []

    def _serve(model, **overrides):
        app, client = make_client(model, settings, **overrides)
        apps.append(app)
        return app, client

    yield _serve
    for app in apps:
        close = getattr(app.extensions["lsml"].queue, "close", None)
        if close:
            close()
        catchup = app.extensions.get("lsml_catchup")
        if catchup is not None:  # its thread would wake on a deleted tmp dir
            catchup.stop()
