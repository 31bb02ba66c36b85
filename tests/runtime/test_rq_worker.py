"""`label-studio-ml worker` processes against a real redis-server: trainings, failures, coalescing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsml.store import LocalModelStore
from lsml.training.queue import TrainingRequest
from lsml.training.rq_queue import RQQueue
from tests.fixtures.polling import wait_for
from tests.fixtures.redis import RedisServer
from tests.fixtures.rq_procs import Procs, fit_log, make_queue, write_backend

pytestmark = pytest.mark.redis


def req(n: int = 0, project: str = "1", event: str = "ANNOTATION_CREATED", **payload) -> TrainingRequest:
    return TrainingRequest(project=project, event=event, payload={"n": n, **payload}, label_config="<View/>")


def finished(queue: RQQueue, job_id: str) -> dict | None:
    status = queue.status(job_id)
    return status if status["status"] in ("finished", "failed") else None


def two_workers(tmp_path: Path, procs: Procs, redis_url: str, **env: str) -> tuple[Path, Path, RQQueue]:
    """A backend, the log its fits write, a queue, and two workers (`env`: the model's TEST_FIT_* knobs)."""
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    queue = make_queue(redis_url)
    for name in ("w1", "w2"):
        procs.worker(backend, redis_url, name=name, TEST_FIT_LOG=str(log), **env)
    return backend, log, queue


def test_a_worker_trains_and_publishes_a_version(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(redis_url)
    job_id = queue.submit(req(n=7))
    procs.worker(backend, redis_url)
    status = wait_for(lambda: finished(queue, job_id), 60, what="the training to end")
    assert status["status"] == "finished", procs.log("worker")
    assert status["model_version"] == "v1" and status["error"] is None
    current = LocalModelStore(backend / "data" / "models").current("1")
    assert current.name == "v1"
    trained = json.loads((current.path / "model.json").read_text())
    assert trained["event"] == "ANNOTATION_CREATED"
    assert queue.coalescer.state("1") == {}, "running marker must be cleared"


def test_a_failing_fit_ends_failed_with_its_reason_and_publishes_nothing(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(redis_url)
    job_id = queue.submit(req(fail=True))
    log = tmp_path / "fits.jsonl"
    procs.worker(backend, redis_url, TEST_FIT_LOG=str(log))
    status = wait_for(lambda: finished(queue, job_id), 60, what="the training to end")
    assert status["status"] == "failed"
    assert "no annotations to train on" in status["error"]
    assert LocalModelStore(backend / "data" / "models").versions("1") == []
    assert queue.stats()["failed"] == 1
    assert len(fit_log(log)) == 1, "a fit that raises is not retried (only a killed one runs again)"


def test_a_burst_during_a_training_causes_exactly_one_more_on_the_newest_data(tmp_path, procs, redis_url):
    hold = tmp_path / "hold"  # the first fit runs until the burst is in: the test, not a fit's length, decides
    hold.touch()
    backend, log, queue = two_workers(tmp_path, procs, redis_url, TEST_FIT_HOLD=str(hold))
    first = queue.submit(req(n=0))
    wait_for(lambda: fit_log(log), 30, what="the first fit to start")  # claimed: no longer pending
    ids = {queue.submit(req(n=n)) for n in range(1, 41)}
    hold.unlink()
    assert len(ids) == 1 and first not in ids, "the burst must coalesce into one job queued after the running one"
    second = ids.pop()
    wait_for(lambda: finished(queue, second), 60, what="the second training")
    assert queue.status(first)["status"] == "finished"
    assert queue.status(second)["status"] == "finished"
    store = LocalModelStore(backend / "data" / "models")
    assert [v.name for v in store.versions("1")] == ["v1", "v2"]
    newest = json.loads((store.current("1").path / "model.json").read_text())
    assert newest["data"]["n"] == 40, "the queued training must train on the newest event"
    fits = fit_log(log)
    assert [f["at"] for f in fits] == ["start", "end", "start", "end"], "one project never trains twice at once"


def test_two_workers_train_two_projects_in_parallel(tmp_path, procs, redis_url):
    # each fit waits (60 s at most) until both started: two fits at once end before that, one after another not
    _, log, queue = two_workers(tmp_path, procs, redis_url, TEST_FIT_BARRIER="2")
    a = queue.submit(req(project="1"))
    b = queue.submit(req(project="2"))
    wait_for(lambda: finished(queue, a) and finished(queue, b), 60, what="both trainings")
    fits = fit_log(log)
    starts = sorted(f["t"] for f in fits if f["at"] == "start")
    ends = sorted(f["t"] for f in fits if f["at"] == "end")
    assert len(starts) == 2 and starts[1] < ends[0], "two projects should train at the same time"
    assert len({f["pid"] for f in fits}) == 2


def test_the_worker_refuses_to_start_without_redis(tmp_path):
    import subprocess
    import sys

    backend = write_backend(tmp_path / "backend")
    env = Procs(tmp_path).env(backend, None)
    result = subprocess.run(
        [sys.executable, "-m", "lsml.cli.worker_command", str(backend)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


def test_the_worker_command_is_a_label_studio_ml_subcommand_with_a_healthcheck(tmp_path, procs, redis_url):
    import subprocess
    import sys

    backend = write_backend(tmp_path / "backend")
    cli = [sys.executable, "-m", "lsml.cli.main", "worker"]
    env = Procs(tmp_path).env(backend, redis_url)
    check = subprocess.run(cli + [str(backend), "--healthcheck"], env=env, capture_output=True, timeout=60)
    assert check.returncode == 1, "no worker registered yet"
    procs.spawn(cli + [str(backend)], env, "cli-worker.log")
    wait_for(
        lambda: subprocess.run(cli + [str(backend), "--healthcheck"], env=env, timeout=60).returncode == 0,
        30,
        interval=0.3,
        what="the worker to register",
    )
    job = make_queue(redis_url).submit(req(n=1))
    assert wait_for(lambda: finished(make_queue(redis_url), job), 60, what="training")["status"] == "finished"
    missing = subprocess.run(cli + [str(tmp_path / "nope")], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_secrets_stay_out_of_worker_logs_and_job_results(tmp_path, procs):
    # a Redis with a password, so the URL itself carries a secret
    password, token = "r3dis-Pa55word", "ls-token-5ecret"
    redis_server = RedisServer(tmp_path / "redis", password=password)
    redis_server.start()
    try:
        url = redis_server.url
        assert password in url
        backend = write_backend(tmp_path / "backend")
        queue = make_queue(url)
        procs.worker(
            backend,
            url,
            LABEL_STUDIO_API_KEY=token,
            BASIC_AUTH_USER="ls",
            BASIC_AUTH_PASS="basic-5ecret",
            LOG_LEVEL="DEBUG",
        )
        ok, bad = queue.submit(req(n=1)), queue.submit(req(project="2", fail=True))
        statuses = [wait_for(lambda j=j: finished(queue, j), 60, what="trainings") for j in (ok, bad)]
        assert [s["status"] for s in statuses] == ["finished", "failed"]
        stored = b"".join(queue.connection.dump(k) or b"" for k in queue.connection.keys("*"))
        for secret in (password, token, "basic-5ecret"):
            assert secret not in procs.log("worker"), f"{secret} leaked into the worker log"
            assert secret not in json.dumps(statuses)
            assert secret.encode() not in stored, f"{secret} stored in Redis"
    finally:
        procs.stop_all()  # workers first, while their Redis is still there
        redis_server.stop()
