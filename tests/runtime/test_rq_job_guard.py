"""Redis is not trusted: a real `label-studio-ml worker` runs lsml's training entry point and nothing else.

Each test enqueues what an attacker with access to Redis could write on the
training queue, with RQ's own client, and checks on disk that it never ran.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue, Retry
from rq.serializers import JSONSerializer, PickleSerializer
from rq.webhook import Webhook

from lsml.store import LocalModelStore
from lsml.training.queue import TrainingRequest
from lsml.training.rq_queue import JOB_FUNCTION
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import Procs, fit_log, make_queue, write_backend

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
    # the right function with a serialised instance (RQ would call a method of it), or with an RQ webhook
    instance = rq_queue.enqueue_call(JOB_FUNCTION, args=("1", {"project": "1", "event": "START_TRAINING"}))
    connection.hset(instance.key, "data", json.dumps([JOB_FUNCTION, {"x": 1}, [], {}]))
    hits: list[str] = []
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0),
        type(
            "Hook",
            (BaseHTTPRequestHandler,),
            {
                "do_POST": lambda self: (hits.append(self.path), self.send_response(204), self.end_headers()),
                "log_message": lambda self, *a: None,
            },
        ),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    webhook = rq_queue.enqueue_call(JOB_FUNCTION, args=("1", {"project": "1", "event": "START_TRAINING"}))
    hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    hooks = [Webhook(hook_url, status, method="POST").to_dict() for status in ("finished", "failed")]
    connection.hset(webhook.key, "webhooks", json.dumps(hooks))
    procs.worker(backend, redis_url)
    queue = make_queue(redis_url)
    for job, reason in ((instance, "must not carry a serialised instance"), (webhook, "must not carry RQ webhooks")):
        status = wait_for(lambda: final_status(queue, job.id), 60, what="the job to end")
        assert status["status"] == "failed" and reason in status["error"], status
    server.shutdown()
    server.server_close()
    assert hits == [], "the worker called a URL named in the job"
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


def test_a_rerun_is_checked_like_any_job_and_a_refused_job_is_never_retried(tmp_path, procs: Procs, redis_url):
    """A re-run (the job is still `running` in the coalescing hash) claims `claimed` from Redis: it is checked
    as every request is; and a job's `retries_left`, which Redis holds too, never re-runs a refused job."""
    from lsml.training.coalesce import state_key

    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    connection = redis.Redis.from_url(redis_url)
    rq_queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    rerun = rq_queue.enqueue_call(JOB_FUNCTION, args=("1", {"project": "1", "event": "START_TRAINING"}))
    connection.hset(
        state_key(QUEUE, "1"),
        mapping={"running": rerun.id, "claimed": json.dumps({"project": "1", "event": "DROP_EVERYTHING"})},
    )
    foreign = rq_queue.enqueue_call("os.system", args=("true",), retry=Retry(max=5))
    procs.worker(backend, redis_url, TEST_FIT_LOG=str(log))
    queue = make_queue(redis_url)
    status = wait_for(lambda: final_status(queue, rerun.id), 60, what="the re-run to end")
    assert status["status"] == "failed" and "is not one the model trains on" in status["error"], status
    status = wait_for(lambda: final_status(queue, foreign.id), 60, what="the foreign job to end")
    assert status["status"] == "failed" and "is not lsml's training entry point" in status["error"], status
    legit_training_still_runs(backend, redis_url)
    assert procs.log("worker").count(f"refused job {foreign.id} from queue") == 1, (
        "a refused job is failed once, not retried"
    )
    assert [f["at"] for f in fit_log(log)] == ["start", "end"], "only the legit training reached fit"


FORGED_CALLBACK = "lsml_forged_callback"


def forge_abandoned_job(connection: redis.Redis, callback: str, **fields: str) -> str:
    """A started job whose worker died (its registry entry expired), naming a failure callback: what RQ's
    `StartedJobRegistry.cleanup`, run by the server for /job_status and /metrics, reaps and would call."""
    rq_queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    job = rq_queue.enqueue_call(JOB_FUNCTION, args=("1", {"project": "1", "event": "START_TRAINING"}))
    rq_queue.remove(job.id)
    connection.hset(job.key, mapping={"status": "started", "failure_callback_name": callback, **fields})
    connection.zadd(f"rq:wip:{QUEUE}", {f"{job.id}:forged-execution": 1})  # expired in 1970
    return job.id


def test_the_server_never_imports_a_callback_named_by_a_forged_job(tmp_path, procs: Procs, redis_url):
    """Issue 22 item 6: reaping a dead worker's job in the server resolves no name from Redis."""
    from tests.fixtures.rq_procs import start_server

    backend = write_backend(tmp_path / "backend")
    marker = tmp_path / "imported"
    # on the server's path (PYTHONPATH and its cwd): importing it is enough to leave the marker
    (backend / f"{FORGED_CALLBACK}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef hook(*args):\n    open({str(marker)!r}, 'a').write('called')\n"
    )
    url = start_server(procs, backend, redis_url, workers=1)
    connection = redis.Redis.from_url(redis_url)

    forged = forge_abandoned_job(connection, f"{FORGED_CALLBACK}.hook")
    r = requests.post(url + "/job_status", json={"job": forged}, timeout=10)
    assert r.status_code < 500, r.text
    assert not marker.exists(), "/job_status imported the callback a forged job named"
    assert r.json()["status"] == "failed", r.json()  # reaped as RQ does: the dead worker's job failed

    forge_abandoned_job(connection, f"{FORGED_CALLBACK}.hook")
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert not marker.exists(), "/metrics imported the callback a forged job named"
    assert connection.zcard(f"rq:wip:{QUEUE}") == 0, "the abandoned entries are reaped all the same"

    # a callback that cannot be imported at all: RQ's import error was a 500 for every /job_status
    forged = forge_abandoned_job(connection, "no_such_module.hook")
    r = requests.post(url + "/job_status", json={"job": "nope"}, timeout=10)
    assert r.status_code == 404, r.text
    assert requests.post(url + "/job_status", json={"job": forged}, timeout=10).status_code == 200
    assert not marker.exists()

    # a record RQ cannot read at all: dropped from the running jobs (logged), not a 500 for every job
    for unreadable in ({"status": "no-such-status"}, {"retries_left": "many"}, {"started_at": "yesterday"}):
        forge_abandoned_job(connection, "", **unreadable)
        r = requests.post(url + "/job_status", json={"job": "nope"}, timeout=10)
        assert r.status_code == 404, (unreadable, r.text)
        assert connection.zcard(f"rq:wip:{QUEUE}") == 0, unreadable
    # beside a readable one, which RQ's own cleanup (in one pipeline after the loop) must still reap
    forge_abandoned_job(connection, "", status="no-such-status")
    forge_abandoned_job(connection, "")
    assert requests.get(url + "/metrics", timeout=10).status_code == 200
    assert connection.zcard(f"rq:wip:{QUEUE}") == 0, "/metrics' reaping stopped at the unreadable record"
    assert "its record in Redis is unreadable" in procs.log("server")
