"""Issue 11 item 1 over HTTP: `POST /prelabel` queues the pre-labelling job (embedded thread, or RQ + a real
worker), `/job_status` shows its progress, `/metrics` done/total; against a real Label Studio and a real Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from lsml.settings import Settings
from tests.fixtures.apps import make_client
from tests.fixtures.polling import wait_for, wait_http
from tests.fixtures.ports import free_port
from tests.fixtures.prelabel_backend import make_backend, predictions_by_task, project_with_tasks, train_two_versions
from tests.fixtures.rq_procs import start_server

pytestmark = pytest.mark.labelstudio
AUTH = {"Authorization": "Basic dTpw"}  # u:p


@pytest.fixture
def backend(tmp_path) -> Path:
    return make_backend(tmp_path)


def _app(backend, label_studio, model="model:TextClassifier", **overrides):
    settings = Settings.from_env(env={}, backend_dir=backend).replace(
        **{
            "label_studio_url": label_studio.url,
            "label_studio_api_key": label_studio.legacy_token,
            "basic_auth_user": "u",
            "basic_auth_pass": "p",
            # no catch-up thread: nothing here tests it, and no fixture would stop it (before, these apps' threads
            # polled their gone Label Studios for the rest of the pytest session)
            "catchup_interval": 0,
            **overrides,
        }
    )
    return make_client(model, settings)


def _ended(client, job: str, timeout: float = 60) -> dict:
    return wait_for(
        lambda: client.post("/job_status", json={"job": job}, headers=AUTH).json,
        timeout,
        0.1,
        what=f"job {job} to end",
        until=lambda st: st["status"] in ("finished", "failed"),
    )


def test_embedded_prelabel_job_writes_predictions_and_reports_progress(label_studio, ls_client, ls_project, backend):  # noqa: F811
    project, task_ids = project_with_tasks(ls_client, ls_project, 17)
    version = train_two_versions(backend, project)
    app, c = _app(backend, label_studio)
    assert c.post("/prelabel", json={"project": project}).status_code == 401
    r = c.post("/prelabel", json={"project": project, "batch_size": 4}, headers=AUTH)
    assert r.status_code == 201 and r.json["created"], r.json
    st = _ended(c, r.json["job"])
    assert st["status"] == "finished" and st["kind"] == "prelabel", st
    assert st["progress"]["done"] == st["progress"]["total"] == 17 and st["progress"]["written"] == 17
    assert st["model_version"] == version
    stored = predictions_by_task(ls_client, project)
    assert sorted(stored) == task_ids and all(len(v) == 1 and v[0]["score"] for v in stored.values())
    assert c.get("/metrics").status_code == 401  # with Basic auth on, /metrics too (its labels name projects)
    metrics = c.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert f'lsml_prelabel_tasks_done{{project="{project}"}} 17.0' in metrics
    assert f'lsml_prelabel_tasks_total{{project="{project}"}} 17.0' in metrics
    spec = c.get("/openapi.json").json
    assert spec["paths"]["/prelabel"]["post"]["security"] == [{"adminToken": []}, {"basicAuth": []}]  # admin route


def test_bad_input_and_failures_are_clear(label_studio, ls_client, ls_project, backend):  # noqa: F811
    project, _ = project_with_tasks(ls_client, ls_project, 2)
    train_two_versions(backend, project)
    _, c = _app(backend, label_studio)
    for body, code in (
        ({"project": project, "mode": "bogus"}, "invalid_prelabel"),
        ({"project": project, "batch_size": 0}, "invalid_prelabel"),
        ({"project": project, "extra": 1}, "invalid_field"),
        ({}, "missing_project"),
    ):
        r = c.post("/prelabel", json=body, headers=AUTH)
        assert r.status_code == 400 and r.json["error"] == code, (body, r.json)
    train_two_versions(backend, 987654)
    st = _ended(c, c.post("/prelabel", json={"project": 987654}, headers=AUTH).json["job"])
    assert st["status"] == "failed" and "project 987654 does not exist" in st["error"], st
    _, down = _app(backend, label_studio, label_studio_url=f"http://127.0.0.1:{free_port()}")
    st = _ended(down, down.post("/prelabel", json={"project": project}, headers=AUTH).json["job"])
    assert st["status"] == "failed" and "unreachable" in st["error"], st
    _, refused = _app(backend, label_studio, label_studio_api_key="not-a-token")
    st = _ended(refused, refused.post("/prelabel", json={"project": project}, headers=AUTH).json["job"])
    assert st["status"] == "failed" and "refused the API token" in st["error"] and "not-a-token" not in st["error"]


def admin_post(url: str, path: str, body: dict) -> requests.Response:
    return requests.post(url + path, json=body, timeout=10)


@pytest.mark.parametrize(
    "args, reason",
    [
        (("1", {"project": "2"}), "is not the job's"),
        (("1", {"project": "1", "mode": "everything"}), "mode must be one of"),
        (("1", {"project": "1", "batch_size": 10**9}), "batch_size must be an integer"),
        (("1", {"project": "1", "callback": "os.system"}), "unknown field(s): callback"),
        (("1", "not a dict"), "must be a JSON object"),
    ],
)
def test_prelabel_job_arguments_from_redis_are_checked_in_the_worker(tmp_path, procs, redis_url, args, reason):
    """Refused arguments fail the job once: its `retries_left` (Redis's) re-runs only a job whose horse was killed."""
    from rq import Queue
    from rq.job import Retry
    from rq.serializers import JSONSerializer

    from lsml.prelabel_jobs import JOB_FUNCTION, RQPrelabelJobs
    from tests.fixtures.rq_procs import write_backend

    backend = write_backend(tmp_path / "backend")
    settings = Settings.from_env(env={}, backend_dir=backend).replace(redis_url=redis_url)
    raw = Queue("lsml-training", connection=RQPrelabelJobs(settings).connection, serializer=JSONSerializer)
    job = raw.enqueue_call(JOB_FUNCTION, args=args, retry=Retry(max=3)).id
    procs.worker(backend, redis_url)
    jobs = RQPrelabelJobs(settings)
    st = wait_for(
        lambda: jobs.status(job),
        60,
        what="the job to end",
        until=lambda st: st and st["status"] in ("finished", "failed"),
    )
    assert st["status"] == "failed" and reason in st["error"], st
    time.sleep(1)  # a retry would be queued at once and picked up within the worker's poll
    assert jobs.status(job)["status"] == "failed" and procs.log("worker").count(f"({job})") == 1, procs.log("worker")


def _stored_versions(ls_client, project: int) -> dict[int, list[str]]:
    return {t: sorted(p["model_version"] for p in ps) for t, ps in predictions_by_task(ls_client, project).items()}


def _annotate_and_webhook(ls_client, client, project: int, task_id: int, text: str, label: str) -> None:
    """What Label Studio does on a submit: store the annotation, send ANNOTATION_CREATED to /webhook."""
    result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
    annotation = ls_client.create_annotation(task_id, result)
    from tests.fixtures.label_studio import SENTIMENT_CONFIG

    r = client.post(
        "/webhook",
        headers=AUTH,
        json={
            "action": "ANNOTATION_CREATED",
            "project": {"id": project, "label_config": SENTIMENT_CONFIG},
            "task": {"id": task_id, "data": {"text": text}},
            "annotation": annotation,
        },
    )
    assert r.status_code == 201, r.json


def test_opt_in_repredict_after_webhook_triggered_fits_ends_on_the_newest_version(
    label_studio,
    ls_client,
    ls_project,
    backend,  # noqa: F811
    monkeypatch,
):
    from lsml.store import LocalModelStore

    gate = backend / "predict-gate"
    gate.touch()  # every predict waits while it exists: the run a publish starts outlasts the next fits, however slow
    monkeypatch.setenv("TEST_PREDICT_GATE", str(gate))
    monkeypatch.syspath_prepend(str(backend))
    project, task_ids = project_with_tasks(ls_client, ls_project, 12)
    texts = {t["id"]: t["data"]["text"] for t in ls_client.iter_tasks(project)}
    app, c = _app(backend, label_studio, model="slow_model:Slow", prelabel_on_publish=True)
    queue = app.extensions["lsml"].queue
    store = LocalModelStore(Settings.from_env(env={}, backend_dir=backend).model_dir)
    labels = ["Positive", "Negative", "Positive", "Negative"]
    for task_id, label in zip(task_ids[:4], labels, strict=True):  # one fit each: v1 cannot predict yet, v2.. can
        _annotate_and_webhook(ls_client, c, project, task_id, texts[task_id], label)
        queue.wait_idle(60)
    assert len(store.versions(str(project))) == 4
    gate.unlink()
    unlabelled = task_ids[4:]

    def newest_everywhere():
        app.extensions["lsml"].queue.wait_idle(60)
        current = store.current(str(project)).name
        stored = _stored_versions(ls_client, project)
        done = set(stored) == set(unlabelled) and all(current in v for v in stored.values())
        jobs = app.extensions.get("lsml_prelabel")
        idle = jobs is not None and not jobs._active
        return current if done and idle else None

    newest = wait_for(newest_everywhere, 90, interval=0.5, what="re-prediction to reach the newest version")
    stored = _stored_versions(ls_client, project)
    assert set(stored) == set(unlabelled)  # annotated tasks are not re-predicted
    assert all(v.count(newest) == 1 for v in stored.values()), stored  # one prediction of the newest each
    jobs = app.extensions["lsml_prelabel"]
    published = len(store.versions(str(project)))
    assert 1 <= len(jobs._jobs) < published  # coalesced: 4 publishes while a run was held, fewer jobs


def test_repredict_is_off_by_default_and_skipped_while_pinned(label_studio, ls_client, ls_project, backend):  # noqa: F811
    from lsml.prelabel_jobs import after_publish

    project, _ = project_with_tasks(ls_client, ls_project, 3)
    settings = Settings.from_env(env={}, backend_dir=backend)
    assert after_publish(settings, str(project), "v1") is None  # LSML_PRELABEL_ON_PUBLISH unset
    train_two_versions(backend, project)
    from lsml.store import LocalModelStore

    LocalModelStore(settings.model_dir).activate(str(project), "v1")
    assert after_publish(settings.replace(prelabel_on_publish=True), str(project), "v3") is None
    with pytest.raises(ValueError, match="LSML_PRELABEL_ON_PUBLISH must be true or false"):
        Settings.from_env(env={"LSML_PRELABEL_ON_PUBLISH": "maybe"})
    assert Settings.from_env(env={"LSML_PRELABEL_ON_PUBLISH": "1"}).prelabel_on_publish


def test_rq_repredict_after_webhook_triggered_fits(label_studio, ls_client, ls_project, backend, procs, redis_url):  # noqa: F811
    from lsml.store import LocalModelStore
    from tests.fixtures.label_studio import SENTIMENT_CONFIG

    project, task_ids = project_with_tasks(ls_client, ls_project, 8)
    texts = {t["id"]: t["data"]["text"] for t in ls_client.iter_tasks(project)}
    env = {
        "LSML_MODEL": "model:TextClassifier",
        "LSML_PRELABEL_ON_PUBLISH": "true",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
    }
    url = start_server(procs, backend, redis_url, workers=1, **env)
    procs.worker(backend, redis_url, **env)
    store = LocalModelStore(backend / "data" / "models")
    for n, (task_id, label) in enumerate(zip(task_ids[:2], ["Positive", "Negative"], strict=True), start=1):
        result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        annotation = ls_client.create_annotation(task_id, result)
        r = admin_post(
            url,
            "/webhook",
            {
                "action": "ANNOTATION_CREATED",
                "project": {"id": project, "label_config": SENTIMENT_CONFIG},
                "task": {"id": task_id, "data": {"text": texts[task_id]}},
                "annotation": annotation,
            },
        )
        assert r.status_code == 201, r.text
        wait_for(lambda: len(store.versions(str(project))) >= n, 60, interval=0.2, what=f"version {n}")

    def predicted_by_v2():
        stored = _stored_versions(ls_client, project)
        return stored if set(stored) == set(task_ids[2:]) and all(v == ["v2"] for v in stored.values()) else None

    wait_for(predicted_by_v2, 60, interval=0.5, what="the worker to re-predict unlabelled tasks with v2")


def test_cli_queues_on_a_running_server_and_follows_its_progress(label_studio, ls_client, ls_project, backend, procs):  # noqa: F811
    import subprocess
    import sys
    from pathlib import Path

    project, task_ids = project_with_tasks(ls_client, ls_project, 9)
    version = train_two_versions(backend, project)
    env = {
        "LSML_MODEL": "model:TextClassifier",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
        "BASIC_AUTH_USER": "u",
        "BASIC_AUTH_PASS": "p",
    }
    from tests.fixtures.rq_procs import gunicorn_argv

    port = free_port()
    procs.spawn(gunicorn_argv(backend, port, workers=1), procs.env(backend, None, **env), "server.log", cwd=backend)
    url = f"http://127.0.0.1:{port}"

    wait_http(url + "/healthz", 60, "the server", interval=0.1)  # /healthz: Basic auth guards /health
    cli = [
        str(Path(sys.executable).parent / "label-studio-ml"),
        "predict",
        "--project",
        str(project),
        "--server",
        url,
        "--batch-size",
        "3",
    ]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BASIC_AUTH", "LABEL_STUDIO_", "LSML_"))}
    refused = subprocess.run(cli, env=clean, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "answered 401" in refused.stderr, refused.stderr
    r = subprocess.run(
        cli, env={**clean, "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p"}, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert f"9 predictions of {version} written" in r.stdout and "9/9 tasks" in r.stderr, (r.stdout, r.stderr)
    assert sorted(predictions_by_task(ls_client, project)) == task_ids
