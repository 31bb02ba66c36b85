"""Faults with real processes and a real redis-server: killed workers, killed Redis.

(Server-side faults, Redis down under /webhook and /predict, and two servers
on one store are in test_rq_server.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

import pytest
import redis

from lsml.store import LocalModelStore
from lsml.training.queue import TrainingRequest
from lsml.training.rq_worker import MAX_RECONNECT_WAIT, TrainingWorker, drop_pubsub
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import fit_log, make_queue, write_backend

pytestmark = pytest.mark.redis


def lost_redis(log: str) -> bool:
    """The worker saw Redis gone and retries: RQ's dequeue loop says so, or lsml's reconnect loop (run_worker)."""
    return "could not connect to Redis instance" in log or "unreachable" in log


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


def starts(log) -> list[dict]:
    return [f for f in fit_log(log) if f["at"] == "start"]


def kill_mid_fit(worker, log, fits_before: int) -> int:
    """SIGKILL a worker and its work horse once fit number `fits_before + 1` started, as the kubelet does to
    every process of a pod past its grace period (RQ puts the horse in a process group of its own)."""
    horse = wait_for(lambda: starts(log)[fits_before:], 30, what="the slow fit")[0]["pid"]
    worker.send_signal(signal.SIGKILL)
    os.kill(horse, signal.SIGKILL)
    worker.wait(timeout=10)
    wait_for(lambda: not pid_alive(horse), 10, what="the work horse to die")
    return horse


def trained_on(store, version: str) -> dict:
    return json.loads((store.find("1", version).path / "model.json").read_text())["data"]


def test_a_fit_killed_with_its_worker_runs_again_on_the_next_worker_and_loses_no_trigger(tmp_path, procs, redis_url):
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    store = LocalModelStore(backend / "data" / "models")
    queue = make_queue(redis_url)
    w1 = procs.worker(backend, redis_url, name="w1", TEST_FIT_LOG=str(log), TEST_FIT_SECONDS="60")
    killed = queue.submit(req(n=1))
    wait_for(lambda: starts(log), 30, what="the slow fit")
    nxt = queue.submit(req(n=2))  # arrives during the fit: the next pending job
    assert queue.submit(req(n=3)) == nxt
    kill_mid_fit(w1, log, 0)
    # a trigger arriving while the dead job still looks "started" folds into the pending job
    assert queue.submit(req(n=4)) == nxt
    assert queue.coalescer.state("1")["running"] == killed and queue.coalescer.state("1")["pending"] == nxt

    # the new worker alone (nobody polls the server) finds the dead job, runs it again, then the pending one
    procs.worker(backend, redis_url, name="w2", TEST_FIT_LOG=str(log))
    wait_for(lambda: ended(queue, killed) and ended(queue, nxt), 60, interval=0.2, what="both trainings to end")
    assert [v.name for v in store.versions("1")] == ["v1", "v2"], "one version per training, no duplicate fit"
    assert trained_on(store, "v1")["n"] == 1, "the killed fit runs again on what it had claimed"
    assert trained_on(store, "v2")["n"] == 4
    assert len(starts(log)) == 3, fit_log(log)
    first, again = queue.status(killed), queue.status(nxt)
    assert first["status"] == "finished" and first["model_version"] == "v1", first
    assert again["status"] == "finished" and again["model_version"] == "v2", again
    assert queue.stats() == {"queued": 0, "running": 0, "failed": 0}
    assert queue.coalescer.state("1") == {}, "the running marker and what it claimed are cleared"
    assert "runs again (its previous attempt was killed)" in procs.log("w2")


def test_a_work_horse_killed_alone_reruns_in_the_same_worker(tmp_path, procs, redis_url):
    # the OOM killer takes the work horse, not the worker: RQ's own monitor sees it die
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    store = LocalModelStore(backend / "data" / "models")
    queue = make_queue(redis_url)
    procs.worker(backend, redis_url, name="w1", TEST_FIT_LOG=str(log), TEST_FIT_SLOW_ONCE=str(tmp_path / "slow"))
    job = queue.submit(req(n=1))
    horse = wait_for(lambda: starts(log), 30, what="the slow fit")[0]["pid"]
    os.kill(horse, signal.SIGKILL)
    status = wait_for(lambda: ended(queue, job), 60, what="the training to end")
    assert status["status"] == "finished" and status["model_version"] == "v1", (status, procs.log("w1"))
    assert [v.name for v in store.versions("1")] == ["v1"]
    assert len(starts(log)) == 2 and starts(log)[1]["pid"] != horse


def test_a_fit_killed_on_every_attempt_fails_with_the_reason_and_the_next_trigger_still_trains(
    tmp_path, procs, redis_url
):
    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    store = LocalModelStore(backend / "data" / "models")
    queue = make_queue(redis_url, fit_attempts=2)
    doomed = queue.submit(req(n=1))
    w1 = procs.worker(backend, redis_url, name="w1", TEST_FIT_LOG=str(log), TEST_FIT_SECONDS="60")
    kill_mid_fit(w1, log, 0)
    nxt = queue.submit(req(n=2))
    assert nxt != doomed
    # no worker is alive: a server's /job_status (its registry cleanup, without the worker's handlers) puts it back
    requeued = wait_for(
        lambda: (lambda st: st if st["status"] == "queued" else None)(queue.status(doomed)),
        30,
        interval=0.5,
        what="the killed job to be queued again",
    )
    assert requeued["error"] is None and queue.stats()["failed"] == 0
    w2 = procs.worker(backend, redis_url, name="w2", TEST_FIT_LOG=str(log), TEST_FIT_SECONDS="60")
    kill_mid_fit(w2, log, 1)
    killed_at = time.monotonic()

    status = wait_for(lambda: ended(queue, doomed), 30, interval=0.5, what="the abandoned job to fail")
    assert status["status"] == "failed", status
    assert "died" in status["error"] and "LSML_FIT_ATTEMPTS" in status["error"]
    assert time.monotonic() - killed_at < 25, "abandoned jobs must converge within the heartbeat TTL"
    assert store.versions("1") == [], "a killed fit publishes nothing"

    procs.worker(backend, redis_url, name="w3", TEST_FIT_LOG=str(log))
    status = wait_for(lambda: ended(queue, nxt), 60, what="the next training")
    assert status["status"] == "finished", procs.log("w3")
    assert [v.name for v in store.versions("1")] == ["v1"] and trained_on(store, "v1")["n"] == 2
    assert len(starts(log)) == 3, "two attempts of the killed fit, then the next trigger"


def test_kill_9_of_redis_with_a_training_queued_still_trains_after_restart(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    job_id = queue.submit(req(n=1))
    private_redis.kill()
    # a worker started while Redis is down waits for it instead of exiting
    worker = procs.worker(backend, private_redis.url, name="w1")
    wait_for(lambda: "unreachable" in procs.log("w1"), 30, what="the worker to find Redis down")
    assert worker.poll() is None, procs.log("w1")  # and it goes on waiting
    private_redis.start()  # same data dir: the AOF has the queued job
    status = wait_for(lambda: queue.ping() and ended(queue, job_id), 60, interval=0.2, what="the training")
    assert status["status"] == "finished", procs.log("w1")
    assert LocalModelStore(backend / "data" / "models").current("1").name == "v1"


def assert_trained_by_the_same_worker(queue, job_id: str, worker, procs, what: str) -> None:
    """`job_id` finishes, and worker w1, still the same process, ran it (its exit code and log if not)."""
    status = wait_for(
        lambda: ended(queue, job_id),
        60,
        interval=0.2,
        what=what,
        diagnose=lambda: f"worker exit code {worker.poll()}; its log:\n{procs.log('w1')}",
    )
    assert status["status"] == "finished", procs.log("w1")
    assert worker.poll() is None, procs.log("w1")


def test_a_worker_survives_a_redis_restart_while_idle(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    worker = procs.worker(backend, private_redis.url, name="w1")
    first = queue.submit(req(n=1))
    assert wait_for(lambda: ended(queue, first), 60, what="the first training")["status"] == "finished"
    private_redis.kill()
    wait_for(lambda: lost_redis(procs.log("w1")), 30, what="the idle worker to lose Redis")
    private_redis.start()
    wait_for(queue.ping, 20, what="Redis back")
    second = queue.submit(req(n=2))
    assert_trained_by_the_same_worker(queue, second, worker, procs, "a training after the restart")


def test_a_worker_whose_rq_loop_quits_on_an_error_starts_a_new_one(tmp_path, private_redis, procs):
    """RQ's loop quits on any error it does not expect and, when its teardown reaches Redis, returns as if stopped.

    A CI run under load lost its only worker that way (the test above): Redis went away in the bookkeeping
    right after a job and was back before RQ's teardown, so `work()` returned and the process exited 0.
    Here the same return is caused for real and without a timing window: a registry key of the wrong type
    (Redis is not trusted) makes the worker's first registry cleanup raise WRONGTYPE.
    """
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    finished_registry = queue.queue.finished_job_registry.key
    queue.connection.set(finished_registry, "not a sorted set")
    worker = procs.worker(backend, private_redis.url, name="w1")
    wait_for(lambda: "unhandled exception" in procs.log("w1"), 30, what="RQ's loop to quit on WRONGTYPE")
    queue.connection.delete(finished_registry)
    job = queue.submit(req(n=1))
    assert_trained_by_the_same_worker(queue, job, worker, procs, "a training after RQ's loop quit")
    assert "quit without a stop request" in procs.log("w1")


#: `label-studio-ml worker` with a SIGTERM delivered inside RQ's bootstrap, i.e. before RQ's own handlers exist
STOP_WHILE_RQ_BOOTSTRAPS = """
import os, signal, sys
from lsml.cli.worker_command import main
from lsml.training.rq_worker import TrainingWorker

register_birth = TrainingWorker.register_birth


def register_birth_then_stop(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return register_birth(self, *args, **kwargs)


TrainingWorker.register_birth = register_birth_then_stop
sys.exit(main(sys.argv[1:]))
"""


def test_a_stop_asked_while_rq_bootstraps_ends_the_worker(tmp_path, private_redis, procs):
    """`label-studio-ml start` and the kubelet stop a worker with one SIGTERM (a second is RQ's cold shutdown).

    A worker still starting when it comes (its imports and RQ's bootstrap take seconds on a loaded machine)
    took it in lsml's early handler, then RQ installed its own and worked on: the stop was lost and the
    worker ran until the supervisor's SIGKILL 30 s later (a fresh machine's CI run, Ctrl-C of `start` under
    load). The signal is delivered inside RQ's bootstrap here, so the window is hit every time.
    """
    backend = write_backend(tmp_path / "backend")
    script = tmp_path / "stop_while_rq_bootstraps.py"
    script.write_text(STOP_WHILE_RQ_BOOTSTRAPS)
    worker = procs.spawn([sys.executable, str(script), str(backend)], procs.env(backend, private_redis.url), "w1.log")
    code = wait_for(
        worker.poll,
        30,
        what="the worker to end on the SIGTERM it got while RQ bootstrapped",
        until=lambda c: c is not None,
        diagnose=lambda: procs.log("w1")[-3000:],
    )
    assert code == 0, procs.log("w1")
    assert "started with PID" in procs.log("w1"), "the signal must land inside RQ's bootstrap, not before it"


def test_a_worker_waits_at_most_max_reconnect_wait_between_two_tries_of_a_lost_redis(tmp_path, private_redis, procs):
    """RQ doubles its wait up to 60 s: a worker idle through a long outage would sit up to a minute after it.

    Reads the waits the worker logs (RQ's "retrying in N seconds", lsml's "retrying in N.Ns"), not the clock:
    uncapped the fourth is 8 s, capped 5 s (RQ's command thread always says 2 s and never reaches 4).
    """
    backend = write_backend(tmp_path / "backend")
    queue = make_queue(private_redis.url)
    procs.worker(backend, private_redis.url, name="w1")
    first = queue.submit(req(n=1))
    assert wait_for(lambda: ended(queue, first), 60, what="a training")["status"] == "finished"
    private_redis.kill()  # idle again after a job: RQ's dequeue loop is the one that retries (either is held)
    waits = wait_for(
        lambda: [float(w) for w in re.findall(r"retrying in ([\d.]+) ?s", procs.log("w1"))],
        90,
        interval=0.2,
        what="two reconnect waits of 4 s or more",
        until=lambda found: sum(w >= 4 for w in found) >= 2,
    )
    assert max(waits) <= MAX_RECONNECT_WAIT, waits


def test_a_stopping_worker_does_not_wait_for_its_command_thread_to_wake(private_redis):
    """RQ's teardown unsubscribes, then stops its pubsub thread, and redis-py 8 joins that thread, which sleeps up
    to 60 s once it has read the UNSUBSCRIBE reply (a loaded pass, then the idle machine: a worker stopped
    mid-training outlived `start`'s 30 s bound, its stack in that join). The race is driven: the thread has
    read the reply, and is asleep, before the teardown runs; the teardown must still end within seconds."""
    connection = redis.Redis.from_url(private_redis.url)
    worker = TrainingWorker(["lsml-training"], connection=connection)
    worker.subscribe()
    worker.pubsub.unsubscribe()
    wait_for(lambda: not worker.pubsub.subscribed, 10, what="the pubsub thread to read the UNSUBSCRIBE reply")
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 10, "the teardown waited for the pubsub thread's 60 s sleep"
    connection.close()


def test_a_worker_given_up_on_stops_its_command_thread_while_redis_is_down(private_redis):
    """Each outage would otherwise leak RQ's pubsub thread, retrying for ever and subscribing again later."""
    connection = redis.Redis.from_url(private_redis.url)
    worker = TrainingWorker(["lsml-training"], connection=connection)
    worker.subscribe()
    thread = worker.pubsub_thread
    assert thread is not None and thread.is_alive()
    private_redis.kill()
    drop_pubsub(worker)
    wait_for(lambda: not thread.is_alive(), 15, what="the command thread to end")


def test_a_worker_stops_on_sigterm_even_while_redis_is_down(tmp_path, private_redis, procs):
    backend = write_backend(tmp_path / "backend")
    worker = procs.worker(backend, private_redis.url, name="w1")
    wait_for(lambda: "Listening on" in procs.log("w1"), 30, what="the worker to listen")
    private_redis.kill()
    wait_for(lambda: lost_redis(procs.log("w1")), 30, what="the idle worker to lose Redis")  # retrying now
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)  # raises if the worker keeps retrying Redis instead of stopping
    assert worker.returncode == 0, procs.log("w1")


def test_a_worker_that_never_reached_redis_stops_on_sigterm_in_its_reconnect_wait(tmp_path, private_redis, procs):
    """No RQ worker exists yet, so no RQ handler: lsml's reconnect loop owns SIGTERM (was: killed by the signal)."""
    backend = write_backend(tmp_path / "backend")
    private_redis.kill()
    worker = procs.worker(backend, private_redis.url, name="w1")
    wait_for(lambda: "unreachable" in procs.log("w1"), 30, what="lsml's reconnect loop to wait")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    assert worker.returncode == 0, procs.log("w1")
    assert "stopping" in procs.log("w1")
