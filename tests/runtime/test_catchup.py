"""Catch-up (`lsml.catchup`) against a real Label Studio: annotations whose webhook never arrived get trained.

Each test connects a real backend (gunicorn; with Redis also an RQ worker) to a
real Label Studio 1.23.2 project, lets its webhooks train a first version and
catch-up take its baseline, then makes Label Studio's webhooks fail (backend
stopped, or its Redis stopped so `/webhook` answers 503), changes annotations,
and waits for the version that catch-up's training publishes. The model
records what each `fit` saw, so the tests assert on exactly those annotations.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import LocalModelStore
from lsml.watermark import STATE_KEY
from tests.fixtures.label_studio import sentiment_choice
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import start_server

pytestmark = [pytest.mark.labelstudio]

INTERVAL = "1.5"

# Records every fit: the triggers it got (its own and the coalesced ones), with annotation ids.
MODEL_PY = """
import json, os, time
from lsml import LabelStudioMLBase


class Recorder(LabelStudioMLBase):
    def predict(self, tasks, context=None, **kwargs):
        return [[] for _ in tasks]

    def fit(self, event, data, **kwargs):
        triggers = list(kwargs.get("coalesced") or []) + [{"event": event, "data": data}]
        seen = []
        for item in triggers:
            body = item["data"] or {}
            ids = [body["annotation"]["id"]] if "annotation" in body else [a["id"] for a in body.get("annotations") or []]
            seen.append({"event": item["event"], "ids": ids, "catchup": body.get("catchup") is True})
        block = os.environ.get("TEST_FIT_BLOCK")  # a catch-up training waits while this file exists
        if block and any(t["catchup"] for t in seen) and os.path.exists(block):
            open(block + ".started", "w").close()
            while os.path.exists(block):
                time.sleep(0.05)
        (self.output_dir / "seen.json").write_text(json.dumps(seen))
        with open(os.environ["TEST_FIT_LOG"], "a") as f:
            f.write(json.dumps(seen) + "\\n")
"""


def write_backend(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(MODEL_PY)
    (path / "_wsgi.py").write_text(
        "from lsml.server import create_app\n\nMODEL = 'model:Recorder'\napp = create_app(MODEL)\n"
    )
    return path


def fits(log) -> list[list[dict]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


class Backend:
    """A recording backend (server, and a worker with Redis) connected to one Label Studio project."""

    def __init__(self, tmp_path, procs, label_studio, redis_url: str | None = None) -> None:
        self.dir = write_backend(tmp_path / "backend")
        self.procs = procs
        self.redis_url = redis_url
        self.log = tmp_path / "fits.jsonl"
        self.token = label_studio.personal_access_token()
        self.env = {
            "LSML_MODEL": "model:Recorder",
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": self.token,
            "LSML_CATCHUP_INTERVAL": INTERVAL,
            "TEST_FIT_LOG": str(self.log),
            "TEST_FIT_BLOCK": str(tmp_path / "block"),
        }
        self.settings = Settings.from_env(
            env={"MODEL_DIR": str(self.dir / "data" / "models"), **({"REDIS_URL": redis_url} if redis_url else {})},
            backend_dir=self.dir,
        )
        self.store = LocalModelStore(self.settings.model_dir)
        self.url = ""
        self.running: list = []
        self.state: Any = None

    def start(self, **extra: str) -> None:
        before = len(self.procs.started)
        env = {**self.env, **extra}
        if self.redis_url:
            self.procs.worker(self.dir, self.redis_url, **env)
        self.url = start_server(self.procs, self.dir, self.redis_url, workers=1, **env)
        self.running = self.procs.started[before:]

    def stop(self) -> None:
        for proc in self.running:
            proc.terminate()
        for proc in self.running:
            proc.wait(timeout=30)
        self.running = []

    def latest(self, project: int) -> str | None:
        version = self.store.latest(str(project))
        return version.name if version else None

    def ledger(self, project: int) -> dict:
        if self.state is None:  # one reader for the test (each SqliteState opens its own connection)
            self.state = make_state(self.settings)
        saved = self.state.get(str(project), STATE_KEY)
        return saved if isinstance(saved, dict) else {}

    def caught_up(self, project: int) -> tuple[str | None, str | None]:
        """(newest version, the version catch-up's watermark belongs to): equal once a check confirmed it."""
        return self.latest(project), self.ledger(project).get("version")

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
            if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
                total += float(match.group(2))
        return total


def connected_project(ls_client, ls_project, backend: Backend, tasks: int = 14) -> tuple[int, list[int]]:
    """A project with `tasks` tasks, the backend registered (Label Studio posts its webhooks), and a first
    version trained on two annotations that the webhooks delivered; catch-up's baseline taken."""
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"text": f"text {i}"} for i in range(tasks)])
    ids = sorted(t["id"] for t in ls_client.tasks(project))
    backend.start()
    ls_client.ensure_ml_backend(project, backend.url, title="catch-up test")
    first = [ls_client.create_annotation(task, sentiment_choice("Positive"))["id"] for task in ids[:2]]
    wait_for(
        lambda: {i for fit in fits(backend.log) for t in fit for i in t["ids"]},
        60,
        what="the webhooks' training of the first two annotations",
        until=lambda seen: seen >= set(first),
    )
    wait_for(
        lambda: backend.caught_up(project),
        30,
        what="catch-up's baseline of the newest version",
        until=lambda found: found[0] is not None and found[0] == found[1],
        diagnose=lambda: backend.procs.log("server")[-3000:],
    )
    return project, ids


def test_annotations_made_while_the_backend_was_down_train_a_version_without_any_event(
    tmp_path, procs, label_studio, ls_client, ls_project
):
    backend = Backend(tmp_path, procs, label_studio)
    project, tasks = connected_project(ls_client, ls_project, backend)
    backend.stop()
    before, trained = len(fits(backend.log)), backend.latest(project)

    missed = [ls_client.create_annotation(task, sentiment_choice("Negative"))["id"] for task in tasks[2:12]]

    # nothing sends it an event: Label Studio's webhooks for these were refused while it was down. With a long
    # interval only the check a process makes at its start can find them: no later check hides a slow first one
    backend.start(LSML_CATCHUP_INTERVAL="600")
    new = wait_for(lambda: fits(backend.log)[before:], 30, what="catch-up's training from the first check")
    wait_for(lambda: backend.latest(project) != trained, 10, what="the version catch-up's training publishes")
    seen = [t for fit in new for t in fit]
    assert sorted(i for t in seen for i in t["ids"]) == sorted(missed)
    assert {t["event"] for t in seen} == {"ANNOTATION_CREATED"} and all(t["catchup"] for t in seen)
    assert len(new) == 1  # one coalesced training
    assert backend.metric("lsml_training_submitted_total") == 0  # no webhook reached this process
    assert backend.metric("lsml_catchup_recovered_total", event="ANNOTATION_CREATED") == 10
    assert backend.metric("lsml_catchup_enabled") == 1
    health = requests.get(backend.url + "/health?details=true", timeout=5).json()
    assert health["catchup"] == {"status": "on", "interval": 600.0}

    backend.stop()
    backend.start()  # checks every INTERVAL again

    wait_for(
        lambda: backend.caught_up(project),
        30,
        what="catch-up to confirm the new version",
        until=lambda found: found[0] is not None and found[0] == found[1],
        diagnose=lambda: procs.log("server")[-4000:],
    )
    wait_for(
        lambda: backend.metric("lsml_catchup_checks_total", outcome="current"),
        30,
        what="a later check finding nothing more",
    )
    assert len(fits(backend.log)) == before + 1  # the recovered annotations are not trained twice


def test_a_recovery_whose_training_was_lost_with_a_restart_is_found_again(
    tmp_path, procs, label_studio, ls_client, ls_project
):
    """Embedded training lives in the server: stopped mid-fit, the queued recovery is gone; the next
    server finds the same changes again (the watermark kept what it was before that recovery)."""
    backend = Backend(tmp_path, procs, label_studio)
    project, tasks = connected_project(ls_client, ls_project, backend)
    backend.stop()
    before, block = len(fits(backend.log)), tmp_path / "block"
    block.touch()
    missed = [ls_client.create_annotation(task, sentiment_choice("Negative"))["id"] for task in tasks[2:12]]
    backend.start()
    wait_for(lambda: (tmp_path / "block.started").exists(), 30, what="catch-up's training to start")
    backend.stop()  # the fit dies with the server: nothing published, nothing logged
    assert fits(backend.log)[before:] == []
    block.unlink()

    backend.start()
    new = wait_for(lambda: fits(backend.log)[before:], 30, what="the recovery after the restart")
    assert sorted(i for fit in new for t in fit for i in t["ids"]) == sorted(missed)


def test_annotations_deleted_while_the_backend_was_down_retrain_with_the_deletion(
    tmp_path, procs, label_studio, ls_client, ls_project
):
    backend = Backend(tmp_path, procs, label_studio)
    project, tasks = connected_project(ls_client, ls_project, backend)
    first = [a["id"] for a in ls_client.annotations(tasks[0])] + [a["id"] for a in ls_client.annotations(tasks[1])]
    backend.stop()
    before = len(fits(backend.log))

    ls_client.delete(f"/api/annotations/{first[0]}/")

    backend.start()
    new = wait_for(lambda: fits(backend.log)[before:], 30, what="catch-up's training after the deletion")
    seen = [t for fit in new for t in fit]
    assert seen == [{"event": "ANNOTATIONS_DELETED", "ids": [first[0]], "catchup": True}]


@pytest.mark.redis
def test_annotations_made_while_redis_was_down_train_a_version_once_it_is_back(
    tmp_path, procs, label_studio, ls_client, ls_project, private_redis
):
    backend = Backend(tmp_path, procs, label_studio, redis_url=private_redis.url)
    project, tasks = connected_project(ls_client, ls_project, backend)
    before, trained = len(fits(backend.log)), backend.latest(project)
    refused_before = backend.metric("lsml_http_requests_total", route="/webhook", status="503")
    private_redis.stop()

    missed = [ls_client.create_annotation(task, sentiment_choice("Negative"))["id"] for task in tasks[2:12]]
    # Label Studio did post them, and the server refused each (Redis down): Label Studio never retries. Polled:
    # under load Label Studio's 1 s webhook timeout can end its wait before the server has answered and counted
    wait_for(
        lambda: backend.metric("lsml_http_requests_total", route="/webhook", status="503") - refused_before,
        30,
        what="the server to have refused the 10 webhooks",
        until=lambda refused: refused == 10,
    )

    private_redis.start()
    new = wait_for(lambda: fits(backend.log)[before:], 60, what="catch-up's training once Redis is back")
    wait_for(lambda: backend.latest(project) != trained, 10, what="the version catch-up's training publishes")
    seen = [t for fit in new for t in fit]
    assert sorted(i for t in seen for i in t["ids"]) == sorted(missed)
    assert all(t["catchup"] for t in seen)
    assert backend.metric("lsml_catchup_recovered_total", event="ANNOTATION_CREATED") == 10


def test_without_label_studio_credentials_catch_up_is_off_and_health_says_so(tmp_path, procs):
    backend_dir = write_backend(tmp_path / "backend")
    url = start_server(procs, backend_dir, None, workers=1, LSML_MODEL="model:Recorder", LSML_CATCHUP_INTERVAL="1")
    catchup = requests.get(url + "/health?details=true", timeout=5).json()["catchup"]
    assert catchup["status"] == "off" and "LABEL_STUDIO_URL" in catchup["reason"]
    metrics = requests.get(url + "/metrics", timeout=5).text
    assert "lsml_catchup_enabled 0.0" in metrics
