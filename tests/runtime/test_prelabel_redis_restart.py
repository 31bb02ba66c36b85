"""Issue 11: a pre-labelling job on RQ survives a Redis restart mid-job (real redis-server, real Label Studio 1.23.2,
gunicorn + `label-studio-ml worker` as processes).

- Redis stopped and started again on the same port with its data (AOF,
  `appendfsync always`): the running job goes on by itself and ends
  `finished`; no page written before the outage is predicted again beyond
  the one in flight, and Label Studio holds exactly one prediction per task.
- Redis back EMPTY (its data lost): the job must neither hang nor pass for
  a success. A running job stops at its next page and fails with a reason
  naming the lost data (`/job_status`, and `label-studio-ml predict --server`
  exits 1 with it); a queued job that vanished is unknown (404) and the CLI
  exits 1 instead of polling forever. A new submit resumes from the
  checkpoint and Label Studio's own data, without duplicates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.polling import wait_for
from tests.fixtures.prelabel_backend import (
    ADMIN_TOKEN,
    BATCH,
    CLI,
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
from tests.fixtures.rq_procs import start_server

pytestmark = pytest.mark.labelstudio

LOST = "Redis came back without its data"


@pytest.fixture
def backend(tmp_path) -> Path:
    path = make_backend(tmp_path)
    (path / "logged_model.py").write_text(LOGGED_MODEL)
    return path


def _stack(procs, backend: Path, redis_url: str, label_studio) -> str:
    env = {
        "LSML_MODEL": "logged_model:Logged",
        "TEST_PREDICT_SECONDS": "0.4",
        "TEST_PREDICT_LOG": str(backend / "predicted.jsonl"),
        "TEST_PREDICT_HOLD": str(backend / "hold"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
        "LSML_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    url = start_server(procs, backend, redis_url, workers=1, **env)
    procs.worker(backend, redis_url, name="worker", **env)
    return url


def test_job_goes_on_after_a_redis_restart_with_its_data(
    label_studio, ls_client, ls_project, backend, procs, private_redis
):
    project, task_ids = project_with_tasks(ls_client, ls_project, N)
    version = trained_version(backend, project, private_redis.url)
    url = _stack(procs, backend, private_redis.url, label_studio)
    hold_at(backend, 15)  # the job waits after 15 tasks: the outage always lands mid-job
    job, st = started_job(url, project, 15)
    assert st["status"] == "started", st

    private_redis.kill()  # a crash: nothing saved at shutdown; the AOF (fsync always) has every write
    written_before = sum(len(v) for v in predictions_by_task(ls_client, project).values())
    release_hold(backend)  # the horse writes its next page, then meets the outage
    time.sleep(3)  # the outage: longer than the worker's heartbeat interval and every client timeout
    private_redis.start()  # same port, same data dir

    st = wait_for(
        lambda: (lambda s: s if s.get("status") in ("finished", "failed") else None)(prelabel_status(url, job)),
        120,
        interval=0.3,
        what="the job to end after Redis came back",
    )
    assert st["status"] == "finished", st
    assert 0 < written_before < N
    predicted = predicted_ids(backend)
    assert sorted(set(predicted)) == task_ids
    assert len(predicted) - N <= BATCH, predicted  # re-predicted: at most the batch in flight
    assert_one_prediction_each(ls_client, project, task_ids, version)


def test_redis_back_empty_fails_the_job_loudly_and_a_resubmit_resumes(
    label_studio, ls_client, ls_project, backend, procs, private_redis
):
    project, task_ids = project_with_tasks(ls_client, ls_project, N)
    version = trained_version(backend, project, private_redis.url)
    url = _stack(procs, backend, private_redis.url, label_studio)
    hold_at(backend, 15)  # the job waits after 15 tasks: Redis loses its data mid-job, however fast the machine
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BASIC_AUTH", "LABEL_STUDIO_", "LSML_"))}
    follower = subprocess.Popen(
        [CLI, "predict", "--project", str(project), "--server", url, "--batch-size", str(BATCH)],
        env={**clean, "LSML_ADMIN_TOKEN": ADMIN_TOKEN},  # the CLI sends it to /prelabel
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(predicted_ids(backend)) >= 15, 60, interval=0.1, what="the job to predict some pages")
        job = marked_job(private_redis.url, project)
        assert job is not None
        private_redis.kill()
        for leftover in private_redis.data_dir.iterdir():  # the data is lost: no AOF, no RDB (the log stays)
            if leftover.name != "redis.log":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        private_redis.start()
        release_hold(backend)  # the horse's next page finds its job gone
        out, err = follower.communicate(timeout=60)  # the follower does not poll forever
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    # Either the follower saw the failed record the horse writes back, or it polled first, while the
    # record was gone: both are a loud exit 1 naming the job and the lost data.
    assert follower.returncode == 1, (out, err)
    saw_failure = f"job {job} failed" in err and LOST in err
    saw_vanished = f"{job} is unknown to {url}" in err and "Redis lost its data" in err
    assert saw_failure or saw_vanished, (out, err)
    st = wait_for(  # the horse re-writes its job's record as it fails
        lambda: (lambda s: s if s.get("status") in ("finished", "failed") else None)(prelabel_status(url, job)),
        60,
        interval=0.3,
        what="the job's record written back as failed",
    )
    assert st["status"] == "failed" and LOST in st["error"], st
    assert f"Job OK ({job})" not in procs.log("worker")  # never reported as a success

    written_before = sum(len(v) for v in predictions_by_task(ls_client, project).values())
    assert 0 < written_before < N
    r = admin_post(url, "/prelabel", {"project": project, "batch_size": BATCH})
    assert r.status_code == 201 and r.json()["job"] != job, r.text
    st = wait_for(
        lambda: (lambda s: s if s.get("status") in ("finished", "failed") else None)(
            prelabel_status(url, r.json()["job"])
        ),
        120,
        interval=0.3,
        what="the resubmitted job",
    )
    assert st["status"] == "finished", st
    predicted = predicted_ids(backend)
    assert sorted(set(predicted)) == task_ids
    assert len(predicted) - N <= BATCH, predicted  # re-predicted: at most one batch
    assert_one_prediction_each(ls_client, project, task_ids, version)


def test_cli_following_a_job_that_vanished_from_redis_exits_1(tmp_path, procs, redis_server):
    import redis

    from tests.fixtures.rq_procs import write_backend

    backend = write_backend(tmp_path / "backend")
    # no worker: the job stays queued
    url = start_server(procs, backend, redis_server.url, workers=1, LSML_ADMIN_TOKEN=ADMIN_TOKEN)
    redis_server.flush()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BASIC_AUTH", "LABEL_STUDIO_", "LSML_"))}
    follower = subprocess.Popen(
        [CLI, "predict", "--project", "7", "--server", url, "--quiet"],
        env={**clean, "LSML_ADMIN_TOKEN": ADMIN_TOKEN},  # the CLI sends it to /prelabel
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = wait_for(lambda: marked_job(redis_server.url, 7), 30, what="the job's marker")
    wait_for(lambda: redis.Redis.from_url(redis_server.url).exists(f"rq:job:{job}"), 30, what="the job to be queued")
    redis_server.flush()  # Redis loses its data while the job waits in the queue
    try:
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 1 and f"job {job} is unknown" in err, (out, err)


def test_a_job_no_longer_started_or_gone_stops_its_run(redis_url):
    """After an outage longer than the heartbeat TTL a registry cleanup may fail the job while its horse still
    runs: the horse's next check stops it (a resubmitted run may be going); a job whose hash is gone too."""
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    from lsml.prelabel_jobs import JOB_FUNCTION, JobLost, JobRequeued, _still_running

    connection = redis.Redis.from_url(redis_url)
    job = Queue("lsml-training", connection=connection, serializer=JSONSerializer).enqueue_call(
        JOB_FUNCTION, args=("1", {"project": "1"})
    )
    connection.hset(job.key, "status", "started")
    _still_running(job)  # running: goes on
    connection.hset(job.key, "status", "failed")  # what StartedJobRegistry.cleanup does to an abandoned job
    with pytest.raises(JobLost, match="is failed"):
        _still_running(job)
    connection.hset(job.key, "status", "queued")  # ... or queued it again, having an attempt left
    with pytest.raises(JobRequeued, match="queued again"):
        _still_running(job)
    connection.delete(job.key)  # Redis came back empty
    with pytest.raises(JobLost, match=LOST):
        _still_running(job)


def test_a_redis_that_stays_down_fails_the_write_after_the_grace_period():
    from lsml.redis_outage import PatientState, RedisOutage
    from lsml.state import RedisState
    from tests.fixtures.ports import free_port

    state = PatientState(RedisState(f"redis://127.0.0.1:{free_port()}/0"), grace=1.0)  # nothing listens there
    started = time.monotonic()
    with pytest.raises(RedisOutage, match="Redis unreachable for more than 1 s while writing state 'prelabel'"):
        state.set("1", "prelabel", {"last_task_id": 5})
    assert 0.5 < time.monotonic() - started < 5
