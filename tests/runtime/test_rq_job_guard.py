"""Redis is not trusted: a real `label-studio-ml worker` runs lsml's training entry point and nothing else.

Each test enqueues what an attacker with access to Redis could write on the
training queue, with RQ's own client, and checks on disk that it never ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer, PickleSerializer

from lsml.store import LocalModelStore
from lsml.training.queue import TrainingRequest
from lsml.training.rq_queue import JOB_FUNCTION
from tests.runtime.rq_procs import Procs, make_queue, wait_for, write_backend

pytestmark = pytest.mark.redis

QUEUE = "lsml-training"


def final_status(queue, job_id: str) -> dict | None:
    status = queue.status(job_id)
    return status if status and status["status"] in ("finished", "failed") else None


def legit_training_still_runs(backend: Path, redis_url: str) -> None:
    queue = make_queue(redis_url)
    job = queue.submit(TrainingRequest(project="1", event="START_TRAINING", payload={"n": 1}, label_config="<View/>"))
    status = wait_for(lambda: final_status(queue, job), 60, what="the legit training")
    assert status["status"] == "finished", status
    assert LocalModelStore(backend / "data" / "models").current("1").name == "v1"


def test_a_job_naming_os_system_is_failed_with_the_reason_and_never_runs(tmp_path, procs: Procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    marker = tmp_path / "pwned"
    connection = redis.Redis.from_url(redis_url)
    rq_queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    foreign = rq_queue.enqueue_call("os.system", args=(f"id > {marker}",))
    # the right function, but a failure callback that would run os.system on the failure path
    callback = rq_queue.enqueue_call(JOB_FUNCTION, args=("1", {"project": "1", "event": "START_TRAINING"}))
    connection.hset(callback.key, "failure_callback_name", "os.system")
    procs.worker(backend, redis_url)
    queue = make_queue(redis_url)
    status = wait_for(lambda: final_status(queue, foreign.id), 60, what="the foreign job to end")
    assert status["status"] == "failed"
    assert "is not lsml's training entry point" in status["error"] and "os.system" in status["error"], status
    status = wait_for(lambda: final_status(queue, callback.id), 60, what="the callback job to end")
    assert status["status"] == "failed"
    assert "must not name a failure callback" in status["error"], status
    assert not marker.exists(), "the foreign function ran"
    log = procs.log("worker")
    assert f"refused job {foreign.id}" in log and "never runs" in log, log[-3000:]
    legit_training_still_runs(backend, redis_url)
    assert not marker.exists()


def test_a_pickled_payload_is_never_unpickled(tmp_path, procs: Procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    marker = tmp_path / "pwned-by-pickle"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"id > {marker}",))

    connection = redis.Redis.from_url(redis_url)
    pickled = Queue(QUEUE, connection=connection, serializer=PickleSerializer)
    job = pickled.enqueue_call(JOB_FUNCTION, args=("1", Exploit()))
    assert not marker.exists(), "pickling the exploit must not run it here"
    procs.worker(backend, redis_url)
    queue = make_queue(redis_url)
    status = wait_for(lambda: final_status(queue, job.id), 60, what="the pickled job to end")
    assert status["status"] == "failed"
    assert "not lsml's JSON job format" in status["error"], status
    assert not marker.exists(), "the pickled payload was unpickled"
    legit_training_still_runs(backend, redis_url)


BAD_ARGUMENTS = [
    (("../../etc", {"project": "../../etc", "event": "START_TRAINING"}), "invalid project"),
    (("1", {"project": "2", "event": "START_TRAINING"}), "invalid project"),
    (("1", {"project": "1", "event": "DROP_EVERYTHING"}), "is not one the model trains on"),
    (("1", {"project": "1", "event": "START_TRAINING", "payload": "x"}), "'payload' must be dict"),
    (("1", ["not", "an", "object"]), "must be (project: str, request: object)"),
]


def test_job_arguments_from_redis_are_checked(tmp_path, procs: Procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    connection = redis.Redis.from_url(redis_url)
    rq_queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    jobs = [(rq_queue.enqueue_call(JOB_FUNCTION, args=args).id, reason) for args, reason in BAD_ARGUMENTS]
    procs.worker(backend, redis_url)
    queue = make_queue(redis_url)
    for job_id, reason in jobs:
        status = wait_for(lambda: final_status(queue, job_id), 60, what="the job to end")
        assert status["status"] == "failed" and reason in status["error"], status
    assert not (backend / "data" / "models" / "etc").exists()
    assert LocalModelStore(backend / "data" / "models").projects() == []
