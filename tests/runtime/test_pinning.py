"""Issue 11 item 3: pin and roll back model versions (store, training, CLI, HTTP, 2 real gunicorn servers)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from lsml.cli.main import main as cli_main
from lsml.integrity import VersionIntegrityError
from lsml.store import LocalModelStore
from lsml.training.job import run_training
from lsml.training.queue import TrainingRequest
from tests.fixtures.model_store import publish
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import start_server, write_backend
from tests.fixtures.sample_models import CountingModel

TEXT = '<View><Text name="text" value="$text"/><Choices name="label" toName="text"><Choice value="A"/></Choices></View>'


@pytest.fixture
def store(tmp_path):
    return LocalModelStore(tmp_path / "models")


def test_activate_pins_a_version_that_later_publishes_do_not_replace(store):
    for i in range(3):
        publish(store, content=str(i))
    assert store.activate("1", "v1").name == "v1"
    assert store.current("1").name == store.pinned("1").name == "v1"
    v4 = publish(store, content="new")
    assert v4.name == "v4" and store.latest("1").name == "v4"
    assert store.current("1").name == "v1"  # still served
    assert store.unpin("1").name == "v4"
    assert store.current("1").name == "v4" and store.pinned("1") is None
    publish(store)
    assert store.current("1").name == "v5"  # unpinned: every publish becomes current again


def test_activate_without_pin_is_replaced_by_the_next_publish(store):
    publish(store)
    publish(store)
    store.activate("1", 1, pin=False)
    assert store.current("1").name == "v1" and store.pinned("1") is None
    publish(store)
    assert store.current("1").name == "v3"


def test_prune_keeps_the_pinned_version(store):
    publish(store)
    store.activate("1", "v1")
    for _ in range(5):
        publish(store)
    store.prune("1", keep=2)
    assert [v.name for v in store.versions("1")] == ["v1", "v5", "v6"]


def test_activate_refuses_an_unknown_or_tampered_version(store):
    v1 = publish(store)
    publish(store)
    with pytest.raises(KeyError, match=r"no version 'v9' \(kept: v1, v2\)"):
        store.activate("1", "v9")
    (v1.path / "model.json").write_text("tampered")
    with pytest.raises(VersionIntegrityError):
        store.activate("1", "v1")
    assert store.current("1").name == "v2" and store.pinned("1") is None  # nothing moved


def test_a_pinned_version_survives_a_new_fit_which_builds_on_the_newest(settings):
    train = lambda event: run_training(CountingModel, TrainingRequest("1", event, {}, TEXT), settings)  # noqa: E731
    train("START_TRAINING")
    train("ANNOTATION_CREATED")
    store = LocalModelStore(settings.model_dir)
    store.activate("1", "v1")
    result = train("ANNOTATION_UPDATED")
    assert result["published"] and result["model_version"] == "v3"
    assert store.current("1").name == "v1" and store.pinned("1").name == "v1"
    assert [v.name for v in store.versions("1")] == ["v1", "v2", "v3"]


def test_cli_versions_and_activate(tmp_path, monkeypatch, capsys):
    backend = tmp_path / "backend"
    backend.mkdir()
    monkeypatch.delenv("MODEL_DIR", raising=False)
    store = LocalModelStore(backend / "data" / "models")
    publish(store, project="3")
    publish(store, project="3")
    assert cli_main(["activate", str(backend), "--project", "3", "v1"]) == 0
    assert "current v1, pinned v1" in capsys.readouterr().out
    assert cli_main(["versions", str(backend), "--project", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["current"] == report["pinned"] == "v1" and report["latest"] == "v2"
    assert [d["metadata"]["event"] for d in report["details"]] == ["TEST", "TEST"]
    assert cli_main(["activate", str(backend), "--project", "3", "v7"]) == 1
    assert "no version 'v7' (kept: v1, v2)" in capsys.readouterr().err
    assert cli_main(["unpin", str(backend), "--project", "3"]) == 0
    assert store.current("3").name == "v2" and store.pinned("3") is None
    assert cli_main(["versions", str(tmp_path / "missing"), "--project", "3"]) == 2


def test_http_activate_and_unpin_are_authenticated_and_documented(serve, settings, text_config):
    _, c = serve(CountingModel, basic_auth_user="u", basic_auth_pass="p")
    auth = {"Authorization": "Basic dTpw"}  # u:p
    store = LocalModelStore(settings.model_dir)
    for _ in range(2):
        publish(store, name="fit.json", content="{}")
    body = {"project": "1", "version": "v1"}
    assert c.post("/versions/activate", json=body).status_code == 401
    assert store.pinned("1") is None
    r = c.post("/versions/activate", json=body, headers=auth)
    assert r.status_code == 200 and r.json["current"] == r.json["pinned"] == "v1", r.json
    r = c.get("/versions?project=1", headers=auth)
    assert r.json["pinned"] == "v1" and r.json["model_version"] == "v1"
    assert [d["pinned"] for d in r.json["details"]] == [True, False]
    assert c.get("/versions", headers=auth).json["pinned"] == {"1": "v1"}
    r = c.post("/versions/activate", json={"project": "1", "version": "v5"}, headers=auth)
    assert r.status_code == 404 and r.json["error"] == "unknown_version" and "kept: v1, v2" in r.json["message"]
    r = c.post("/versions/activate", json={"project": "1"}, headers=auth)
    assert r.status_code == 400 and r.json["error"] == "missing_version"
    r = c.post("/versions/activate", json={"project": "1", "version": "v2", "pin": "yes"}, headers=auth)
    assert r.status_code == 400 and r.json["error"] == "invalid_pin"
    assert c.post("/versions/unpin", json={"project": "1"}).status_code == 401
    r = c.post("/versions/unpin", json={"project": "1"}, headers=auth)
    assert r.status_code == 200 and r.json["current"] == "v2" and r.json["pinned"] is None
    spec = c.get("/openapi.json").json
    for path in ("/versions/activate", "/versions/unpin"):  # admin routes: the admin token or Basic auth
        assert spec["paths"][path]["post"]["security"] == [{"adminToken": []}, {"basicAuth": []}]


def _served_versions(url: str, rounds: int = 8) -> set[str]:
    versions = set()
    for _ in range(rounds):  # new connections: every gunicorn worker of the server answers some
        r = requests.post(
            url + "/predict",
            json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1.1", "label_config": TEXT},
            timeout=5,
        )
        assert r.status_code == 200, r.text
        versions.add(r.json()["model_version"])
    return versions


def test_rollback_reaches_two_gunicorn_servers_within_2s(tmp_path, procs):
    backend = write_backend(tmp_path / "backend")
    store = LocalModelStore(backend / "data" / "models")
    for i in range(2):
        publish(store, content=json.dumps({"n": i}))
    servers = [
        start_server(
            procs, backend, None, name=f"server{i}", workers=2, LSML_ADMIN_TOKEN="admin"
        )  # for /versions/unpin
        for i in range(2)
    ]
    wait_for(lambda: all(_served_versions(u) == {"v2"} for u in servers), 30, what="both servers to serve v2")

    def served_everywhere(version: str) -> float | None:
        """The start of a round of requests that all got ``version``: from then on it was served (the end of the
        round would add the round's own requests, seconds on a starved machine, to what is measured)."""
        began = time.monotonic()
        return began if all(_served_versions(u) == {version} for u in servers) else None

    started = time.monotonic()
    assert cli_main(["activate", str(backend), "--project", "1", "v1"]) == 0  # roll back from the command line
    served = wait_for(lambda: served_everywhere("v1"), 10, interval=0.02, what="rollback to v1")
    elapsed = served - started
    assert elapsed < 2.0, f"servers took {elapsed:.2f}s to serve the rolled-back version"

    publish(store, content="{}")  # a new fit's version: pinned v1 stays served
    time.sleep(1.0)
    assert all(_served_versions(u) == {"v1"} for u in servers)

    started = time.monotonic()
    r = requests.post(  # over HTTP, on one server
        servers[1] + "/versions/unpin", json={"project": "1"}, headers={"Authorization": "Bearer admin"}, timeout=5
    )
    assert r.status_code == 200 and r.json()["current"] == "v3"
    served = wait_for(lambda: served_everywhere("v3"), 10, interval=0.02, what="unpin to v3")
    assert served - started < 2.0


# ---- LSML_PINNED_VERSIONS (what the MLBackend's spec.model.pinnedVersions sets) ----------------------------
def test_pinned_versions_setting_is_parsed_per_project_and_for_all():
    from lsml.settings import Settings

    s = Settings.from_env(env={"LSML_PINNED_VERSIONS": " *=v3, 5=2 "})
    assert s.pinned_versions == (("*", "v3"), ("5", "v2"))
    assert (s.pinned_version("5"), s.pinned_version("7")) == ("v2", "v3")
    assert Settings.from_env(env={}).pinned_version("1") is None
    for bad in ("5", "x=v1", "5=latest", "5=v"):
        with pytest.raises(ValueError, match="LSML_PINNED_VERSIONS must be"):
            Settings.from_env(env={"LSML_PINNED_VERSIONS": bad})


def test_a_configured_pin_is_served_survives_fits_and_prunes(serve, settings, text_config):
    pinned = settings.replace(pinned_versions=(("1", "v1"),), keep_versions=1)
    train = lambda: run_training(CountingModel, TrainingRequest("1", "START_TRAINING", {}, TEXT), pinned)  # noqa: E731
    train()
    train()
    _, c = serve(CountingModel, pinned_versions=(("1", "v1"),))
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1", "label_config": TEXT})
    assert r.json["model_version"] == "v1"
    train()  # v3 published, v2 pruned (keep 1), v1 kept because it is pinned
    store = LocalModelStore(settings.model_dir)
    assert [v.name for v in store.versions("1")] == ["v1", "v3"]
    report = c.get("/versions?project=1").json
    assert (report["current"], report["pinned"], report["pinned_by"], report["latest"]) == (
        "v1",
        "v1",
        "LSML_PINNED_VERSIONS",
        "v3",
    )
    time.sleep(0.3)
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1"})
    assert r.json["model_version"] == "v1"


def test_a_configured_pin_to_a_version_not_kept_serves_the_current_one(serve, settings):
    store = LocalModelStore(settings.model_dir)
    publish(store, name="fit.json", content="{}")
    _, c = serve(CountingModel, pinned_versions=(("*", "v9"),))
    r = c.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1", "label_config": TEXT})
    assert r.status_code == 200 and r.json["model_version"] == "v1"
    assert c.get("/versions?project=1").json["pinned"] is None


def test_two_gunicorn_servers_serve_the_configured_pin(tmp_path, procs):
    backend = write_backend(tmp_path / "backend")
    store = LocalModelStore(backend / "data" / "models")
    for i in range(2):
        publish(store, content=json.dumps({"n": i}))
    servers = [
        start_server(procs, backend, None, name=f"server{i}", workers=2, LSML_PINNED_VERSIONS="*=v1") for i in range(2)
    ]
    wait_for(lambda: all(_served_versions(u) == {"v1"} for u in servers), 30, what="both servers to serve v1")
    publish(store, content="{}")
    time.sleep(1.0)
    assert all(_served_versions(u) == {"v1"} for u in servers)
