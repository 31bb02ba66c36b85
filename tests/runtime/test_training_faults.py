"""Faults with real processes and a real redis-server: killed workers, killed Redis.

(Server-side faults, Redis down under /webhook and /predict, and two servers
on one store are in test_rq_server.py.)
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from lsml.store import LocalModelStore
from lsml.training.queue import TrainingRequest
from tests.fixtures.polling import wait_for
from tests.runtime.rq_procs import fit_log, make_queue, write_backend

pytestmark = pytest.mark.redis


def req(project: str = "1", **payload) -> TrainingRequest:
    return TrainingRequest(project=project, event="ANNOTATION_CREATED", payload=payload, label_config="<View/>")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def ended(queue, job_id):
    st = queue.status(job_id)
    return st if st and st["status"] in ("finished", "failed") else None


def test_kill_9_of_a_worker_mid_fit_fails_the_job_and_changes_nothing(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    store = LocalModelStore(backend / "data" / "models")
    queue = make_queue(redis_url)
    worker = procs.worker(backend, redis_url, name="w1", TEST_FIT_LOG=str(log))
    v1 = queue.submit(req(n=1))
    assert wait_for(lambda: ended(queue, v1), 60, what="the first training")["status"] == "finished"
    assert store.current("1").name == "v1"

    doomed = queue.submit(req(n=2, sleep=60))
    start = wait_for(lambda: [f for f in fit_log(log) if f["at"] == "start"][1:], 30, what="the slow fit")[0]
    horse = start["pid"]
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    killed_at = time.monotonic()
    # the work horse running fit dies with its worker: no orphan fit publishes later
    wait_for(lambda: not pid_alive(horse), 10, what="the work horse to die with its worker")
    # a trigger arriving while the dead job still looks "started" must not be lost
    nxt = queue.submit(req(n=3))
    assert nxt != doomed

    status = wait_for(lambda: ended(queue, doomed), 30, interval=0.5, what="the abandoned job to fail")
    assert status["status"] == "failed", status
    assert "died" in status["error"]
    assert time.monotonic() - killed_at < 25, "abandoned jobs must converge within the heartbeat TTL"
    assert store.current("1").name == "v1", "a crashed fit must not change the served version"
    assert [v.name for v in store.versions("1")] == ["v1"]

    procs.worker(backend, redis_url, name="w2", TEST_FIT_LOG=str(log))
    status = wait_for(lambda: ended(queue, nxt), 60, what="the next training")
    assert status["status"] == "finished", procs.log("w2")
    assert store.current("1").name == "v2"


def test_kill_9_of_redis_with_a_training_queued_still_trains_after_restart(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    job_id = queue.submit(req(n=1))
    private_redis.kill()
    # a worker started while Redis is down waits for it instead of exiting
    worker = procs.worker(backend, private_redis.url, name="w1")
    time.sleep(1.5)
    assert worker.poll() is None, procs.log("w1")
    private_redis.start()  # same data dir: the AOF has the queued job
    status = wait_for(lambda: queue.ping() and ended(queue, job_id), 60, interval=0.2, what="the training")
    assert status["status"] == "finished", procs.log("w1")
    assert LocalModelStore(backend / "data" / "models").current("1").name == "v1"


def test_a_worker_survives_a_redis_restart_while_idle(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    worker = procs.worker(backend, private_redis.url, name="w1")
    first = queue.submit(req(n=1))
    assert wait_for(lambda: ended(queue, first), 60, what="the first training")["status"] == "finished"
    private_redis.kill()
    time.sleep(1.0)
    private_redis.start()
    wait_for(queue.ping, 20, what="Redis back")
    second = queue.submit(req(n=2))
    status = wait_for(lambda: ended(queue, second), 60, interval=0.2, what="a training after the restart")
    assert status["status"] == "finished", procs.log("w1")
    assert worker.poll() is None


def test_a_worker_stops_on_sigterm_even_while_redis_is_down(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    worker = procs.worker(backend, private_redis.url, name="w1")
    wait_for(lambda: "Listening on" in procs.log("w1"), 30, what="the worker to listen")
    private_redis.kill()
    time.sleep(1.0)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)  # raises if the worker keeps retrying Redis instead of stopping
    assert worker.returncode == 0, procs.log("w1")
