"""gunicorn servers + RQ workers + a real redis-server: the production stack over HTTP.

Covers: /webhook and /train enqueue and answer at once with a job id,
/job_status follows the job, hot reload across server processes, Redis down
(/webhook 503, /predict keeps serving, recovery by itself).
"""

from __future__ import annotations

import time

import pytest
import requests

from lsml.store import LocalModelStore
from tests.fixtures.label_studio import SENTIMENT_CONFIG as TEXT_CONFIG
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import fit_log, make_queue, start_server, write_backend

pytestmark = pytest.mark.redis

PROJECT = {"id": 1, "title": "p", "label_config": TEXT_CONFIG}
TASKS = [{"id": 7, "data": {"text": "hello"}}]


def webhook(url: str, action: str = "ANNOTATION_CREATED", **extra) -> requests.Response:
    body = {"action": action, "project": PROJECT, **extra}
    if action.startswith("ANNOTATION"):
        body.setdefault("annotation", {"id": 1, "result": []})
        body.setdefault("task", TASKS[0])
    return requests.post(url + "/webhook", json=body, timeout=5)


def job_status(url: str, job: str) -> dict:
    r = requests.post(url + "/job_status", json={"job": job}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def ended(url: str, job: str) -> dict | None:
    st = job_status(url, job)
    return st if st["status"] in ("finished", "failed") else None


def predict_version(url: str) -> str:
    r = requests.post(
        url + "/predict", json={"tasks": TASKS, "project": "1.1700000000", "label_config": TEXT_CONFIG}, timeout=5
    )
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["model_version"]


def setup_version(url: str) -> str:
    r = requests.post(url + "/setup", json={"project": "1.1700000000", "schema": TEXT_CONFIG}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def test_webhook_and_train_enqueue_and_job_status_follows(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    url = start_server(procs, backend, redis_url)
    assert setup_version(url) == "0.0.1"
    procs.worker(backend, redis_url)

    started = time.monotonic()
    r = webhook(url, "START_TRAINING")
    assert time.monotonic() - started < 1.0, "the webhook must answer at once, not train inline"
    assert r.status_code in (200, 201) and r.json()["job"]
    job = r.json()["job"]
    assert job_status(url, job)["status"] in ("queued", "started", "finished")
    st = wait_for(lambda: ended(url, job), 60, what="the training")
    assert st["status"] == "finished" and st["model_version"] == "v1", procs.log("worker")

    # no restart: /setup and predictions move to the new version
    wait_for(lambda: setup_version(url) == "v1", 5, what="/setup to report v1")
    wait_for(lambda: predict_version(url) == "v1", 5, what="predictions to carry v1")
    versions = requests.get(url + "/versions", params={"project": "1"}, timeout=5).json()
    assert versions["versions"] == ["v1"] and versions["model_version"] == "v1"

    # the legacy /train enqueues too
    r = requests.post(
        url + "/train",
        json={"annotations": [{"id": 1}], "project": "1.1700000000", "label_config": TEXT_CONFIG},
        timeout=5,
    )
    assert r.status_code in (200, 201) and r.json()["job"]
    assert wait_for(lambda: ended(url, r.json()["job"]), 60, what="/train's job")["model_version"] == "v2"

    # a failing fit reports its reason
    r = webhook(url, "START_TRAINING", fail=True)
    st = wait_for(lambda: ended(url, r.json()["job"]), 60, what="the failing training")
    assert st["status"] == "failed" and "no annotations to train on" in st["error"]
    assert requests.post(url + "/job_status", json={"job": "nope"}, timeout=5).status_code == 404


def test_redis_down_webhook_503_predict_serves_and_recovers(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    url = start_server(procs, backend, private_redis.url)
    procs.worker(backend, private_redis.url)
    assert setup_version(url) == "0.0.1"
    assert predict_version(url) == "0.0.1"

    private_redis.kill()
    for _ in range(5):
        started = time.monotonic()
        r = webhook(url)
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "training_unavailable" and "Redis" in r.json()["message"]
        assert elapsed < 1.5, f"/webhook took {elapsed:.2f}s with Redis down"
        assert predict_version(url) == "0.0.1"
    # fresh connections reach every gunicorn worker, including ones that never loaded the model
    assert {predict_version(url) for _ in range(10)} == {"0.0.1"}
    assert requests.post(url + "/job_status", json={"job": "x"}, timeout=5).status_code == 503
    assert requests.get(url + "/health", timeout=5).status_code == 200

    private_redis.start()
    r = wait_for(
        lambda: webhook(url, "START_TRAINING"),
        20,
        interval=0.2,
        what="/webhook to accept again",
        until=lambda resp: resp.status_code in (200, 201),
    )
    st = wait_for(lambda: ended(url, r.json()["job"]), 60, what="the training after recovery")
    assert st["status"] == "finished", procs.log("worker")
    wait_for(lambda: predict_version(url) == "v1", 5, what="the new version")


def test_two_servers_two_workers_serve_the_new_version_within_2s(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    servers = [start_server(procs, backend, redis_url, name=f"server{i}", workers=2) for i in range(2)]
    for i in range(2):
        procs.worker(backend, redis_url, name=f"worker{i}", TEST_FIT_LOG=str(log))
    for url in servers:
        assert setup_version(url) == "0.0.1" and predict_version(url) == "0.0.1"
    job = webhook(servers[0], "START_TRAINING").json()["job"]

    def fit_ended() -> float | None:
        ends = [f["t"] for f in fit_log(log) if f["at"] == "end"]
        return ends[0] if ends else None

    fit_end = wait_for(fit_ended, 60, interval=0.02, what="fit to end")

    # every server answers v1 on many consecutive requests (new connections: every gunicorn worker is hit)
    def all_new() -> float | None:
        began = time.time()  # the round's start: from then on every answer was v1
        ok = all(predict_version(u) == "v1" and setup_version(u) == "v1" for u in servers for _ in range(8))
        return began if ok else None

    converged = wait_for(all_new, 10, interval=0.05, what="both servers to serve v1")
    elapsed = converged - fit_end
    assert elapsed < 2.0, f"servers took {elapsed:.2f}s after fit ended to serve the new version"
    assert ended(servers[1], job)["status"] == "finished"
    assert LocalModelStore(backend / "data" / "models").current("1").name == "v1"


def test_an_idle_server_process_reloads_before_the_next_request(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    url = start_server(procs, backend, redis_url, workers=1)
    procs.worker(backend, redis_url)
    assert setup_version(url) == "0.0.1" and predict_version(url) == "0.0.1"
    job = webhook(url, "START_TRAINING").json()["job"]
    queue = make_queue(redis_url)  # poll Redis directly: no request reaches the server meanwhile
    wait_for(lambda: queue.status(job)["status"] == "finished", 60, what="the training")
    time.sleep(1.5)  # several reload intervals, no requests
    assert setup_version(url) == "v1", "the very first request after training must see the new version"
