"""ModelRegistry: load once, off the request path; hot reload when the store's pointer moves."""

import threading

import pytest

from lsml.label_config import LabelConfigError
from lsml.loader import ModelLoadFailed, ModelNotReady, ModelRegistry, UnknownProject
from lsml.state import SqliteState
from lsml.store import LocalModelStore
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import BrokenSetupModel, CountingModel, SlowSetupModel


def publish(settings, project="1", event="START_TRAINING"):
    import json

    store = LocalModelStore(settings.model_dir)
    with store.staging(project) as out:
        (out / "fit.json").write_text(json.dumps({"event": event}))
        return store.publish(project, out)


def test_setup_returns_at_once_and_get_waits_for_the_load(settings, text_config):
    SlowSetupModel.gate = threading.Event()  # the model's setup runs until the test lets it end
    reg = ModelRegistry(SlowSetupModel, settings)
    assert reg.setup("1", text_config) == "0.0.1"  # answered while the model loads
    order: list[str] = []
    got: list[object] = []
    getter = threading.Thread(target=lambda: (got.append(reg.get("1")), order.append("got")))
    getter.start()
    order.append("released")
    SlowSetupModel.gate.set()
    getter.join(30)
    assert order == ["released", "got"], "get returned before the load ended"
    assert isinstance(got[0], SlowSetupModel) and reg.get("1") is got[0]


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
        "import pathlib, time\n"
        f"while not pathlib.Path({str(tmp_path / 'go')!r}).exists():\n    time.sleep(0.01)\n"
        "from lsml import LabelStudioMLBase\nclass M(LabelStudioMLBase):\n    pass\n"
    )
    reg = ModelRegistry("slow_import_mod:M", settings.replace(backend_dir=tmp_path))
    reg.start()
    assert not reg.class_ready  # start() returned while the import still runs (it waits for the file below)
    (tmp_path / "go").touch()
    assert reg.model_class(timeout=30).__name__ == "M" and reg.class_ready


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


SLOW_IMPORT_MODEL = """
import time
from pathlib import Path

from lsml import LabelStudioMLBase

Path(__file__).with_suffix(".started").touch()
while not Path(__file__).with_suffix(".release").exists():  # the test releases it from its fork hook
    time.sleep(0.01)
time.sleep(0.2)  # still executing when the fork comes, unless the registry waits for it


class SlowImport(LabelStudioMLBase):
    pass
"""


def test_a_fork_during_the_model_import_gives_the_child_the_whole_class_and_its_own_threads(settings, tmp_path):
    """gunicorn --preload (the reference SDK's Dockerfile CMD): the app, and its import thread, start in the
    master, which then forks the workers. The child used to find a half-executed module in sys.modules
    ("module ... has no class") or wait forever for the master's thread; it must serve the class."""
    import json
    import os
    import threading

    module = tmp_path / "slow_import_model.py"
    module.write_text(SLOW_IMPORT_MODEL)
    reg = ModelRegistry("slow_import_model:SlowImport", settings.replace(backend_dir=tmp_path))
    armed = [True]

    def release_the_import() -> None:  # registered after the registry's hook, so it runs first (reverse order)
        if armed[0]:
            module.with_suffix(".release").touch()

    os.register_at_fork(before=release_the_import)
    try:
        reg.start()
        wait_for(module.with_suffix(".started").exists, 30, what="the import to begin")
        assert not reg.class_ready
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            try:
                reg.start()  # what the app's before_request does
                cls = reg.model_class(timeout=10)
                reloading = any(t.name == "lsml-reload" for t in threading.enumerate())
                os.write(write_end, json.dumps({"class": cls.__name__, "reload_thread": reloading}).encode())
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                os.write(write_end, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = json.loads(pipe.read() or b"{}")
        os.waitpid(pid, 0)
    finally:
        armed[0] = False
    assert report == {"class": "SlowImport", "reload_thread": True}
    assert reg.model_class(timeout=10).__name__ == "SlowImport"  # and the parent has it too


class FailsOnceOnFlakyModel(CountingModel):
    """`setup` of a version trained on the event "flaky" raises the first time, as a GPU out of memory (the old
    instance still holding it) or Label Studio down inside `setup()` would."""

    tripped = False

    def setup(self):
        super().setup()
        if (self.trained_on or {}).get("event") == "flaky" and not type(self).tripped:
            type(self).tripped = True
            raise RuntimeError("CUDA out of memory")


@pytest.fixture
def fails_once():
    FailsOnceOnFlakyModel.tripped = False
    return FailsOnceOnFlakyModel


def test_a_version_whose_build_failed_for_a_passing_reason_is_built_again(
    settings, text_config, fails_once, monkeypatch
):
    """Before, the failed pointer was never built again: the process served the old version until another was
    published. The retry's delay is shortened here; the default (a minute) is what the product promises."""
    monkeypatch.setattr("lsml.loader._RETRY_FAILED_VERSION", 0.2)
    reg = ModelRegistry(fails_once, settings.replace(reload_interval=0.05))
    publish(settings, event="good")
    assert reg.get("1", text_config).model_version == "v1"
    publish(settings, event="flaky")
    wait_for(lambda: fails_once.tripped, 10, 0.02, what="v2's first build to fail")
    served = wait_for(lambda: reg.get("1"), 10, 0.05, what="v2 built again", until=lambda m: m.model_version == "v2")
    assert served.trained_on == {"event": "flaky"}


def test_activating_a_version_whose_build_failed_serves_it(settings, text_config, fails_once):
    """A rollback to a version whose build once failed here: `activate` writes the same pointer again, and the
    process that handles it (reload) builds it, whatever the retry delay."""
    reg = ModelRegistry(fails_once, settings.replace(reload_interval=0.05))
    publish(settings, event="good")
    assert reg.get("1", text_config).model_version == "v1"
    publish(settings, event="flaky")
    wait_for(lambda: fails_once.tripped, 10, 0.02, what="v2's first build to fail")
    publish(settings, event="later")
    wait_for(lambda: reg.get("1"), 10, 0.02, what="v3 served", until=lambda m: m.model_version == "v3")
    LocalModelStore(settings.model_dir).activate("1", "v2")
    reg.reload("1")
    served = wait_for(lambda: reg.get("1"), 10, 0.02, what="v2 served again", until=lambda m: m.model_version == "v2")
    assert served.trained_on == {"event": "flaky"}


def test_a_process_holding_an_older_label_config_does_not_write_it_back_when_a_version_is_published(
    settings, text_config
):
    """The project's label config changed: process A got a request with the new one and recorded it; process B, idle
    since, still held a model built for the old one. Every publish rebuilt B's model, and the build wrote B's old
    config back to the shared state, which pre-labelling and a /predict without a config read (old labels)."""
    renamed = text_config.replace('value="Positive"', 'value="Good"')
    a = ModelRegistry(CountingModel, settings)
    b = ModelRegistry(CountingModel, settings)
    b.get("1", text_config)
    a.get("1", renamed)
    assert a.state.get("1", "label_config") == renamed
    publish(settings)
    b.reload("1")
    wait_for(lambda: b.get("1").model_version, 10, 0.02, what="B's rebuild on v1", until=lambda v: v == "v1")
    assert b.get("1").label_config == text_config  # B serves what it last saw until a request says otherwise
    assert a.state.get("1", "label_config") == renamed, "B's rebuild wrote its older config back"
