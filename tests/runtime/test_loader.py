"""ModelRegistry: load once, off the request path; hot reload when the store's pointer moves."""

import time

import pytest

from lsml.label_config import LabelConfigError
from lsml.loader import ModelLoadFailed, ModelNotReady, ModelRegistry, UnknownProject
from lsml.state import SqliteState
from lsml.store import LocalModelStore
from tests.fixtures.polling import wait_for
from tests.runtime.sample_models import BrokenSetupModel, CountingModel, SlowSetupModel


def publish(settings, project="1", event="START_TRAINING"):
    import json

    store = LocalModelStore(settings.model_dir)
    with store.staging(project) as out:
        (out / "fit.json").write_text(json.dumps({"event": event}))
        return store.publish(project, out)


def test_setup_returns_at_once_and_get_waits_for_the_load(settings, text_config):
    reg = ModelRegistry(SlowSetupModel, settings)
    t0 = time.perf_counter()
    assert reg.setup("1", text_config) == "0.0.1"
    assert time.perf_counter() - t0 < 0.1
    model = reg.get("1")
    assert isinstance(model, SlowSetupModel) and time.perf_counter() - t0 > 1.0
    assert reg.get("1") is model


def test_get_without_any_label_config_is_unknown_project(settings):
    reg = ModelRegistry(CountingModel, settings)
    with pytest.raises(UnknownProject):
        reg.get("5")


def test_label_config_from_shared_state_is_enough(settings, text_config):
    SqliteState(settings.model_dir / ".lsml" / "state.sqlite3").set("5", "label_config", text_config)
    reg = ModelRegistry(CountingModel, settings)
    assert reg.get("5").label_config == text_config


def test_broken_label_config_is_refused_before_it_is_remembered(settings, text_config):
    reg = ModelRegistry(CountingModel, settings)
    with pytest.raises(LabelConfigError):
        reg.setup("1", "<View")
    assert reg.state.get("1", "label_config") is None


def test_load_timeout_and_load_failure(settings, text_config):
    reg = ModelRegistry(SlowSetupModel, settings.replace(model_load_timeout=0.1))
    with pytest.raises(ModelNotReady):
        reg.get("1", text_config)
    reg = ModelRegistry(BrokenSetupModel, settings)
    with pytest.raises(ModelLoadFailed, match="RuntimeError"):
        reg.get("1", text_config)


def test_hot_reload_swaps_in_a_new_version_and_old_one_serves_meanwhile(settings, text_config):
    reg = ModelRegistry(CountingModel, settings.replace(reload_interval=0.05))
    old = reg.get("1", text_config)
    assert old.model_version == "0.0.1" and old.trained_on is None
    publish(settings)
    assert reg.get("1") is old  # the rebuild happens in the background
    new = wait_for(lambda: reg.get("1"), 10, 0.02, what="the rebuilt model", until=lambda m: m is not old)
    assert new.model_version == "v1" and new.trained_on == {"event": "START_TRAINING"}
    assert reg.setup("1", text_config) == "v1"
    assert reg.loaded() == {"1": "v1"}


def test_two_processes_sharing_model_dir_both_pick_up_a_new_version(settings, text_config):
    # two registries stand in for two gunicorn workers: only the store is shared
    a = ModelRegistry(CountingModel, settings)
    b = ModelRegistry(CountingModel, settings)
    a.get("1", text_config), b.get("1", text_config)
    publish(settings)
    publish(settings)
    wait_for(
        lambda: (a.get("1").model_version, b.get("1").model_version),
        10,
        0.02,
        what="both registries on v2",
        until=lambda versions: versions == ("v2", "v2"),
    )


def test_reload_interval_limits_store_checks(settings, text_config, monkeypatch):
    reg = ModelRegistry(CountingModel, settings.replace(reload_interval=60))
    reg.get("1", text_config)
    calls = []
    original = reg.store.pointer
    monkeypatch.setattr(reg.store, "pointer", lambda p: calls.append(p) or original(p))
    for _ in range(100):
        reg.get("1")
    assert calls == []
    reg.reload("1")
    assert calls == ["1"]


def test_model_class_is_imported_once_in_the_background(settings, tmp_path):
    (tmp_path / "slow_import_mod.py").write_text(
        "import time\ntime.sleep(0.5)\nfrom lsml import LabelStudioMLBase\nclass M(LabelStudioMLBase):\n    pass\n"
    )
    reg = ModelRegistry("slow_import_mod:M", settings.replace(backend_dir=tmp_path))
    t0 = time.perf_counter()
    reg.start()
    assert time.perf_counter() - t0 < 0.1 and not reg.class_ready
    assert reg.model_class(timeout=10).__name__ == "M" and reg.class_ready


def test_the_watcher_reloads_without_requests_also_for_a_class_object(settings, text_config):
    reg = ModelRegistry(CountingModel, settings.replace(reload_interval=0.05))  # a class, not "module:Class"
    reg.start()
    assert reg.get("1", text_config).model_version == "0.0.1"
    publish(settings)
    # loaded() never checks the store itself: only the background watcher can move it to v1
    wait_for(reg.loaded, 10, 0.02, what="the watcher to load v1", until=lambda loaded: loaded == {"1": "v1"})


def test_setup_answers_the_version_an_untrained_model_named_itself(settings, text_config):
    class Named(CountingModel):
        def setup(self):
            super().setup()
            self.set("model_version", "Named-v0.0.1")

    first = ModelRegistry(Named, settings)
    assert first.get("1", text_config).model_version == "Named-v0.0.1"
    # another process (a second gunicorn worker) answers /setup before its own build finishes
    second = ModelRegistry(Named, settings.replace(model_load_timeout=5))
    assert second.setup("1", text_config) == "Named-v0.0.1"
    publish(settings)
    assert ModelRegistry(Named, settings).setup("1", text_config) == "v1"  # a published version wins
