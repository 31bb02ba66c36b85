"""A published version whose artifacts changed after publishing is refused before `setup()` loads it."""

from __future__ import annotations

import json
import logging

import pytest

from lsml.integrity import VERSION_FILE, VersionIntegrityError, verify_version
from lsml.loader import ModelLoadFailed, ModelRegistry
from lsml.store import LocalModelStore
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit


def publish(settings, project="1", event="START_TRAINING", extra: dict | None = None):
    store = LocalModelStore(settings.model_dir)
    with store.staging(project) as out:
        (out / "fit.json").write_text(json.dumps({"event": event}))
        (out / "weights").mkdir()
        (out / "weights" / "w.bin").write_bytes(b"\x00\x01" * 1000)
        for name, data in (extra or {}).items():
            (out / name).write_bytes(data)
        return store.publish(project, out)


def test_publish_records_a_sha256_of_every_artifact(settings):
    import hashlib

    version = publish(settings)
    info = json.loads((version.path / VERSION_FILE).read_text())
    assert set(info["files"]) == {"fit.json", "weights/w.bin"}
    data = (version.path / "weights" / "w.bin").read_bytes()
    assert info["files"]["weights/w.bin"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    verify_version(version.path, version.name)  # an untouched version passes


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "weights" / "w.bin").write_bytes(b"\x00\x02" * 1000), "does not match the SHA-256"),
        (lambda p: (p / "weights" / "w.bin").write_bytes(b"\x00\x01" * 10), "truncated or changed"),
        (lambda p: (p / "evil.pkl").write_bytes(b"cos\nsystem\n"), "holds files it was not published with: evil.pkl"),
        (lambda p: (p / "fit.json").unlink(), "is missing fit.json"),
        (lambda p: (p / VERSION_FILE).unlink(), f"has no {VERSION_FILE}"),
    ],
)
def test_a_damaged_version_is_refused_with_a_clear_error(settings, damage, message):
    version = publish(settings)
    damage(version.path)
    with pytest.raises(VersionIntegrityError, match=message):
        verify_version(version.path, version.name)


def test_the_loader_refuses_a_tampered_version_before_setup(settings, text_config):
    version = publish(settings)
    (version.path / "fit.json").write_text(json.dumps({"event": "TAMPERED_EVENT"}))  # same size
    reg = ModelRegistry(CountingModel, settings)
    with pytest.raises(ModelLoadFailed, match="fit.json does not match the SHA-256"):
        reg.get("1", text_config)
    assert CountingModel.built == 0, "setup() must never see a tampered version"


def test_a_tampered_new_version_is_refused_and_the_previous_one_keeps_serving(settings, text_config, caplog):
    reg = ModelRegistry(CountingModel, settings.replace(reload_interval=0.05))
    publish(settings, event="good")
    good = reg.get("1", text_config)
    assert good.model_version == "v1"
    store = LocalModelStore(settings.model_dir)
    # a half-copied v2: published, then one artifact cut short (as a copy onto a full disk would)
    with store.staging("1") as out:
        (out / "fit.json").write_text(json.dumps({"event": "new"}))
        staged_size = len((out / "fit.json").read_bytes())
        v2 = store.publish("1", out)
    with open(v2.path / "fit.json", "r+b") as f:
        f.truncate(staged_size // 2)
    with caplog.at_level(logging.ERROR, logger="lsml.loader"):
        wait_for(lambda: "v2: fit.json is" in caplog.text, 10, 0.02, what="the refusal of v2 to be logged")
    assert "truncated or changed" in caplog.text and "still serving v1" in caplog.text
    assert reg.get("1") is good and good.trained_on == {"event": "good"}
    built = CountingModel.built
    import time

    time.sleep(0.3)
    assert CountingModel.built == built and caplog.text.count("v2: fit.json is") == 1, (
        "the refused version is not rebuilt (nor logged) on every reload check"
    )
    publish(settings, event="fixed")  # a new good publish is picked up
    new = wait_for(lambda: reg.get("1"), 10, 0.02, what="v3 to replace v1", until=lambda m: m is not good)
    assert new.model_version == "v3" and new.trained_on == {"event": "fixed"}


def test_training_refuses_to_build_on_a_tampered_current_version(settings, text_config):
    version = publish(settings)
    (version.path / "extra.pkl").write_bytes(b"not published")
    request = TrainingRequest(project="1", event="START_TRAINING", label_config=text_config)
    with pytest.raises(VersionIntegrityError, match="extra.pkl"):
        run_training(CountingModel, request, settings)
    assert [v.name for v in LocalModelStore(settings.model_dir).versions("1")] == ["v1"]


def test_a_version_published_before_digests_loads_with_a_warning(settings, caplog):
    version = publish(settings)
    info = json.loads((version.path / VERSION_FILE).read_text())
    del info["files"]
    (version.path / VERSION_FILE).write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING, logger="lsml.integrity"):
        verify_version(version.path, version.name)
    assert "model version v1 was published without file digests" in caplog.text
