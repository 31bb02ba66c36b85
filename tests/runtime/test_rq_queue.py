"""RQQueue against a real redis-server: coalescing, atomicity across clients, Redis outages.

These tests drive the Redis side only (no worker): `claim`/`release` are
called as the job function calls them, so each race is reproduced on purpose.
Worker processes are exercised in test_rq_worker.py and test_training_faults.py.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from lsml.errors import RedisUnavailable
from lsml.training.queue import TrainingRequest
from lsml.training.rq_queue import JOB_FUNCTION, failure_reason
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import make_queue

pytestmark = pytest.mark.redis


def request(project: str = "1", n: int = 0, event: str = "ANNOTATION_CREATED") -> TrainingRequest:
    return TrainingRequest(project=project, event=event, payload={"n": n}, label_config="<View/>")


def test_a_burst_from_many_clients_leaves_one_queued_job(redis_url):
    # eight "servers", each with its own connection, submitting at once
    ids: list[str] = []
    lock = threading.Lock()

    def server(i: int) -> None:
        queue = make_queue(redis_url)
        for j in range(25):
            job_id = queue.submit(request(n=i * 100 + j))
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=server, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    queue = make_queue(redis_url)
    assert len(ids) == 200
    assert len(set(ids)) == 1, "every trigger of the burst must coalesce into one job"
    assert queue.queue.count == 1 and queue.queue.job_ids == [ids[0]]
    assert queue.status(ids[0])["status"] == "queued"
    assert queue.stats() == {"queued": 1, "running": 0, "failed": 0}


def test_the_pending_job_trains_on_the_newest_request(redis_url):
    queue = make_queue(redis_url)
    first = queue.submit(request(n=1))
    assert queue.submit(request(n=2)) == first
    assert queue.submit(request(n=3, event="START_TRAINING")) == first
    claimed = queue.coalescer.claim("1", first)
    assert claimed["payload"] == {"n": 3} and claimed["event"] == "START_TRAINING"
    # the earlier triggers are kept for fit(..., coalesced=[...]), oldest first
    assert claimed["coalesced"] == [
        {"event": "ANNOTATION_CREATED", "data": {"n": 1}},
        {"event": "ANNOTATION_CREATED", "data": {"n": 2}},
    ]
    assert TrainingRequest.from_dict(claimed).coalesced == claimed["coalesced"]
    state = queue.coalescer.state("1")
    assert state["running"] == first and "pending" not in state and "request" not in state
    # what it claimed stays until it ends: a re-run of the same job (its worker was killed) trains on it again
    nxt = queue.submit(request(n=4))
    assert nxt != first
    assert queue.coalescer.claim("1", first) == claimed, "a re-run claims the same request, not the newer one"
    assert queue.coalescer.state("1")["pending"] == nxt
    queue.coalescer.release("1", first)
    assert set(queue.coalescer.state("1")) == {"pending", "request"}
    assert queue.coalescer.claim("1", first) is None, "released: nothing to claim again"
    assert queue.coalescer.claim("1", nxt)["payload"] == {"n": 4}


def test_triggers_a_request_brings_in_coalesced_survive_a_later_webhook_folded_into_its_job(redis_url):
    """Catch-up submits the events Label Studio never delivered as one request: the newest, with the earlier ones in
    `coalesced`. A webhook folded into the same pending job replaced that request, coalesced and all, and the
    earlier missed events never reached fit; catch-up had already counted them as handed over, so no one looked
    for them again."""
    queue = make_queue(redis_url)
    missed = [{"event": "ANNOTATION_CREATED", "data": {"n": n}} for n in (1, 2)]
    recovered = TrainingRequest("1", "ANNOTATION_CREATED", {"n": 3}, "<View/>", coalesced=missed, coalesced_dropped=5)
    job = queue.submit(recovered)
    assert queue.submit(request(n=4)) == job  # an annotator's webhook, before the job starts
    claimed = queue.coalescer.claim("1", job)
    assert claimed["payload"] == {"n": 4}
    assert [c["data"]["n"] for c in claimed["coalesced"]] == [1, 2, 3], claimed["coalesced"]
    assert claimed["coalesced_dropped"] == 5
    # alone, the recovered request reaches fit as submitted
    queue.coalescer.release("1", job)
    again = queue.submit(recovered)
    assert TrainingRequest.from_dict(queue.coalescer.claim("1", again)) == recovered


def test_projects_coalesce_separately(redis_url):
    queue = make_queue(redis_url)
    a = queue.submit(request("1"))
    b = queue.submit(request("2"))
    assert a != b and queue.queue.count == 2


def test_a_trigger_during_a_training_queues_exactly_one_more(redis_url):
    queue = make_queue(redis_url)
    running = queue.submit(request(n=1))
    queue.coalescer.claim("1", running)  # the worker started it
    nxt = queue.submit(request(n=2))
    assert nxt != running, "an event arriving during a training must cause one more training"
    for n in range(3, 10):
        assert queue.submit(request(n=n)) == nxt
    job = Job.fetch(nxt, connection=queue.connection, serializer=JSONSerializer)
    # it waits for the running one (RQ dependency), so two trainings of one project never overlap
    assert job.get_status() == JobStatus.DEFERRED
    assert job._dependency_ids == [running]
    assert queue.status(nxt)["status"] == "queued"
    assert queue.coalescer.claim("1", nxt)["payload"] == {"n": 9}


def test_a_submit_racing_with_claim_is_never_lost(redis_url):
    # many rounds of: claim by a "worker" thread while "servers" submit;
    # every request must be seen either by the claimed job or by the next pending one
    queue = make_queue(redis_url)
    for round_ in range(20):
        queue.connection.flushdb()
        first = queue.submit(request(n=0))
        seen_by_claim: list[dict | None] = []
        barrier = threading.Barrier(2)

        def worker() -> None:
            barrier.wait()
            seen_by_claim.append(make_queue(redis_url).coalescer.claim("1", first))

        t = threading.Thread(target=worker)
        t.start()
        barrier.wait()
        last = make_queue(redis_url).submit(request(n=1))
        t.join()
        claimed = seen_by_claim[0]
        if last == first:
            assert claimed["payload"] == {"n": 1}, f"round {round_}: coalesced request lost"
        else:
            assert claimed["payload"] == {"n": 0}
            assert queue.coalescer.state("1")["pending"] == last


def test_a_dead_pending_job_is_replaced_not_coalesced_into(redis_url):
    queue = make_queue(redis_url)
    first = queue.submit(request(n=1))
    job = Job.fetch(first, connection=queue.connection, serializer=JSONSerializer)
    job.cancel()  # e.g. deleted by an operator with rq's CLI
    second = queue.submit(request(n=2))
    assert second != first
    assert queue.status(second)["status"] == "queued"


def test_a_pending_job_left_deferred_on_a_failed_one_is_replaced_with_its_triggers(redis_url):
    """RQ records a failed job (one pipeline: status, registries) before it enqueues its dependents (another round
    trip); a worker killed or a Redis restart between the two leaves the dependent deferred for good, and RQ never
    recovers it. Coalescing into it answered 2xx for triggers no training would see, forever. The state RQ leaves
    is written here by hand: the window is between two of RQ's own round trips, which lsml cannot open on demand.
    """
    queue = make_queue(redis_url)
    running = queue.submit(request(n=1))
    queue.coalescer.claim("1", running)  # the worker trains it
    stuck = queue.submit(request(n=2))
    assert queue.submit(request(n=3)) == stuck  # folded into the job waiting for it
    queue.coalescer.release("1", running)  # the job function's `finally`, after fit raised
    queue.connection.hset(Job.key_for(running), "status", JobStatus.FAILED.value)  # RQ's first pipeline; then the crash
    assert Job.fetch(stuck, connection=queue.connection, serializer=JSONSerializer).get_status() == JobStatus.DEFERRED

    replacement = queue.submit(request(n=4))
    assert replacement != stuck, "a trigger folded into a job that will never run is lost"
    assert queue.status(replacement)["status"] == "queued"  # nothing live to wait for
    assert queue.submit(request(n=5)) == replacement
    claimed = queue.coalescer.claim("1", replacement)
    assert claimed["payload"] == {"n": 5}
    assert [c["data"] for c in claimed["coalesced"]] == [{"n": 2}, {"n": 3}, {"n": 4}]  # the stuck job's too


def test_a_pending_job_deferred_on_a_running_one_is_still_coalesced_into(redis_url):
    queue = make_queue(redis_url)
    running = queue.submit(request(n=1))
    queue.coalescer.claim("1", running)
    queue.connection.hset(Job.key_for(running), "status", JobStatus.STARTED.value)  # as the worker marks it
    waiting = queue.submit(request(n=2))
    assert queue.submit(request(n=3)) == waiting


def test_jobs_carry_only_the_request(redis_url):
    queue = make_queue(redis_url)
    job_id = queue.submit(request(n=5))
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    assert job.func_name == JOB_FUNCTION
    assert job.args == ["1", request(n=5).to_dict()]
    assert "secret" not in json.dumps(job.args) and "api_key" not in json.dumps(job.args)
    assert job.result_ttl > 0 and job.failure_ttl > 0


def test_unknown_job_status_is_none(redis_url):
    assert make_queue(redis_url).status("no-such-job") is None


def test_failure_reason_is_one_line():
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: no annotations yet\n'
    assert failure_reason(tb) == "ValueError: no annotations yet"
    assert "died" in failure_reason("Moved to FailedJobRegistry, due to AbandonedJobError, at now")


def test_redis_down_fails_fast_and_recovers(private_redis):
    queue = make_queue(private_redis.url)
    first = queue.submit(request(n=1))
    private_redis.kill()
    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        queue.submit(request(n=2))
    with pytest.raises(RedisUnavailable):
        queue.status(first)
    assert queue.ping() is False
    assert time.monotonic() - started < 3.0, "a dead Redis must not block the caller"
    private_redis.start()  # same data dir, AOF: the queued job survived
    assert wait_for(queue.ping, 10, 0.1, what="the restarted Redis to answer") is True
    assert queue.status(first)["status"] == "queued"
    assert queue.submit(request(n=3)) == first


def test_a_job_a_worker_has_dequeued_but_not_started_still_counts_as_queued(redis_url):
    """RQ's dequeue moves a job to an intermediate list before the worker registers it as started: a scrape in
    that gap must not read "nothing queued, nothing running" (tests and people wait for idle by it)."""
    queue = make_queue(redis_url)
    job_id = queue.submit(request())
    # what a worker's dequeue does, stopped where it hands the job over: out of the queue, not yet started
    job, _ = Queue.dequeue_any([queue.queue], None, connection=queue.connection, serializer=JSONSerializer)
    assert job.id == job_id and queue.queue.count == 0 and queue.queue.started_job_registry.count == 0
    assert queue.stats() == {"queued": 1, "running": 0, "failed": 0}
