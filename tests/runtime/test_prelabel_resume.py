"""Issue 11: a pre-labelling job killed with its worker resumes by itself (real redis-server, real Label Studio
1.23.2, gunicorn + `label-studio-ml worker` as processes).

The worker's whole process group (worker + work horse) is SIGKILLed mid-job
and a new worker started; nobody submits again. The same job id goes back
to `queued` (a registry cleanup: RQ's `Retry`), runs again on the new
worker from the project's checkpoint and finishes: at most one batch
predicted twice (counted from the model's own log of task ids), exactly one
prediction per task in Label Studio, and still one job for the project. A
job killed on every attempt (`LSML_PRELABEL_ATTEMPTS`) ends failed with a
reason naming its attempts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue
from rq.registry import StartedJobRegistry

from lsml.training.rq_worker import HEARTBEAT_TTL
from tests.fixtures.polling import wait_for
from tests.fixtures.prelabel_backend import (
    ADMIN_TOKEN,
    BATCH,
    LOGGED_MODEL,
    N,
    admin_post,
    assert_one_prediction_each,
    hold_at,
    make_backend,
    marked_job,
    predicted_ids,
    predictions_by_task,
    prelabel_status,
    project_with_tasks,
    release_hold,
    started_job,
    trained_version,
)
from tests.fixtures.proc_tree import frozen
from tests.fixtures.rq_procs import Procs, start_server

pytestmark = pytest.mark.labelstudio

QUEUE = "lsml-training"  # the default LSML_QUEUE, which the server and worker here use


@pytest.fixture
def backend(tmp_path) -> Path:
    path = make_backend(tmp_path)
    (path / "logged_model.py").write_text(LOGGED_MODEL)
    return path


def _env(backend_dir: Path, label_studio) -> dict[str, str]:
    return {
        "LSML_MODEL": "logged_model:Logged",
        "TEST_PREDICT_SECONDS": "0.4",
        "TEST_PREDICT_LOG": str(backend_dir / "predicted.jsonl"),
        "TEST_PREDICT_HOLD": str(backend_dir / "hold"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
        "LSML_ADMIN_TOKEN": ADMIN_TOKEN,  # /prelabel is an admin route; admin_post sends it
    }


def _worker(procs: Procs, backend_dir: Path, redis_url: str, env: dict[str, str], name: str) -> subprocess.Popen:
    return procs.worker(backend_dir, redis_url, name=name, new_session=True, **env)


def _kill_group(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse at once (a pod deleted past its grace period, a node lost)."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def _queued_again(url: str, job: str) -> dict:
    """With no worker alive, the server's /job_status (its registry cleanup) finds the dead worker's job."""
    return wait_for(
        lambda: (lambda s: s if s.get("status") != "started" else None)(prelabel_status(url, job)),
        40,
        interval=0.5,
        what="the killed job to be queued again",
    )


def test_a_job_killed_with_its_worker_resumes_by_itself_on_the_next_worker(
    label_studio, ls_client, ls_project, backend, procs, redis_url
):
    project, task_ids = project_with_tasks(ls_client, ls_project, N)
    version = trained_version(backend, project, redis_url)
    env = _env(backend, label_studio)
    url = start_server(procs, backend, redis_url, workers=1, **env)
    worker = _worker(procs, backend, redis_url, env, "worker1")
    hold_at(backend, 15)  # the job waits after 15 tasks: the kill always lands mid-job
    job, st = started_job(url, project, 15)
    assert st["status"] == "started", st

    _kill_group(worker)
    written_before = sum(len(v) for v in predictions_by_task(ls_client, project).values())
    assert 0 < written_before < N
    release_hold(backend)
    st = _queued_again(url, job)
    assert st["status"] == "queued" and st["error"] is None, st
    again = admin_post(url, "/prelabel", {"project": project, "batch_size": BATCH})  # still the project's one job
    assert again.status_code == 200 and again.json() == {**again.json(), "job": job, "created": False}, again.text

    _worker(procs, backend, redis_url, env, "worker2")  # no resubmit: the same job runs again
    seen: list[str] = []

    def ended() -> dict | None:
        s = prelabel_status(url, job)
        seen.append(s["status"])
        return s if s["status"] in ("finished", "failed") else None

    st = wait_for(ended, 120, interval=0.2, what="the job to finish on the new worker")
    assert st["status"] == "finished" and st["attempt"] == 2, (st, procs.log("worker2")[-3000:])
    assert "started" in seen, seen
    assert st["progress"]["resumed_after"] is not None and st["progress"]["done"] == N, st
    predicted = predicted_ids(backend)
    assert sorted(set(predicted)) == task_ids
    assert len(predicted) - N <= BATCH, predicted  # re-predicted: at most the batch in flight
    assert_one_prediction_each(ls_client, project, task_ids, version)
    assert marked_job(redis_url, project) is None  # the ended job released the project
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert re.search(rf'lsml_prelabel_tasks_done{{project="{project}"}} {N}\.0', metrics), metrics[-2000:]


def test_a_job_killed_on_every_attempt_fails_naming_its_attempts(
    label_studio, ls_client, ls_project, backend, procs, redis_url
):
    project, _ = project_with_tasks(ls_client, ls_project, N)
    trained_version(backend, project, redis_url)
    env = _env(backend, label_studio)
    url = start_server(procs, backend, redis_url, workers=1, LSML_PRELABEL_ATTEMPTS="2", **env)
    worker = _worker(procs, backend, redis_url, env, "worker1")
    hold_at(backend, 10)  # each attempt is held mid-job, so each kill lands while it runs
    job, _ = started_job(url, project, 10)
    _kill_group(worker)
    assert _queued_again(url, job)["status"] == "queued"

    before = len(predicted_ids(backend))
    hold_at(backend, before + BATCH)  # the second attempt predicts one batch, then waits
    worker = _worker(procs, backend, redis_url, env, "worker2")
    wait_for(
        lambda: (lambda s: s if s["status"] == "started" and s.get("attempt") == 2 else None)(
            prelabel_status(url, job)
        ),
        60,
        interval=0.1,
        what="the second attempt to start",
    )
    wait_for(lambda: len(predicted_ids(backend)) >= before + BATCH, 60, interval=0.1, what="the second to predict")
    _kill_group(worker)
    release_hold(backend)
    st = wait_for(
        lambda: (lambda s: s if s["status"] in ("finished", "failed") else None)(prelabel_status(url, job)),
        40,
        interval=0.5,
        what="the job to fail",
    )
    assert st["status"] == "failed", st
    assert "attempt 2 of 2" in st["error"] and "LSML_PRELABEL_ATTEMPTS" in st["error"], st
    assert "pre-labelling job" in st["error"] and "AbandonedJobError" in st["error"], st
    r = admin_post(url, "/prelabel", {"project": project, "batch_size": BATCH})  # the failed job no longer holds it
    assert r.status_code == 201 and r.json()["job"] != job, r.text


def test_a_redis_outage_longer_than_the_heartbeat_ttl_reruns_the_same_job(
    label_studio, ls_client, ls_project, backend, procs, private_redis
):
    """Redis down past the worker's heartbeat TTL, back with its data: a registry cleanup declares the job
    abandoned and, with an attempt left, queues it again; the running horse stops at its next page without
    failing it, and the same job runs again and finishes: no resubmit, no duplicate, still one job.

    When Redis comes back, the worker's next heartbeat and the first registry cleanup race: a heartbeat
    first keeps the job (it then finishes on attempt 1; `lsml.training.rq_worker` says "may"). The test decides
    that race: worker and horse are frozen (SIGSTOP) while Redis comes back, the test proves the job's
    heartbeat expired, has the server's status call run the cleanup, and only then lets them go on."""
    project, task_ids = project_with_tasks(ls_client, ls_project, N)
    version = trained_version(backend, project, private_redis.url)
    env = _env(backend, label_studio)
    url = start_server(procs, backend, private_redis.url, workers=1, **env)
    worker = _worker(procs, backend, private_redis.url, env, "worker")
    hold_at(backend, 15)  # the job waits after 15 tasks: the outage always lands mid-job
    job, st = started_job(url, project, 15)
    assert st["status"] == "started", st

    private_redis.kill()  # the horse rides the outage out; the worker's heartbeats are skipped
    down = time.time()
    release_hold(backend)  # the horse writes its next page, then meets the outage
    # the last heartbeat landed before the kill, so its deadline is at most down + HEARTBEAT_TTL
    wait_for(lambda: time.time() > down + HEARTBEAT_TTL + 1, HEARTBEAT_TTL + 5, what="the heartbeat TTL to pass")
    with frozen(worker.pid):
        private_redis.start()
        registry = StartedJobRegistry(queue=Queue(QUEUE, connection=redis.Redis.from_url(private_redis.url)))
        assert job in registry.get_expired_job_ids(), "the job's heartbeat deadline has passed"
        # the server's status call runs the registry cleanup: abandoned, an attempt left, queued again
        # (a 503 while the server reconnects to Redis has no status: asked again)
        st = wait_for(
            lambda: prelabel_status(url, job),
            30,
            interval=0.2,
            until=lambda s: s.get("status") not in (None, "started"),
            what="the cleanup to queue the job again",
        )
        assert st["status"] == "queued" and st["error"] is None and st["attempt"] == 1, st
    seen: list[dict] = []

    def ended() -> dict | None:
        s = prelabel_status(url, job)
        seen.append(s)
        return s if s.get("status") in ("finished", "failed") else None

    st = wait_for(ended, 120, interval=0.3, what="the job to end after the outage")
    assert st["status"] == "finished" and st["attempt"] == 2, (st, procs.log("worker")[-3000:])
    assert not any(s.get("status") == "failed" for s in seen), seen
    predicted = predicted_ids(backend)
    assert sorted(set(predicted)) == task_ids
    assert len(predicted) - N <= BATCH, predicted
    assert_one_prediction_each(ls_client, project, task_ids, version)
    assert marked_job(private_redis.url, project) is None
