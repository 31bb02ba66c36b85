"""Creation and resume passes that kopf hands to the pool without waiting (lsml_operator/main.py, ``_hand_off``).

kopf's worker for a new MLBackend used to wait, body and handler state held, for one of the pool's threads: with a
thousand MLBackends arriving at once the operator's peak memory followed their arrival rate (bench/README.md). Now
the handler queues the pass and returns; the pass reads the MLBackend's latest watched body when it starts, and a
full pass that fails is retried by the timer after a backoff, as kopf retried the handler.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest

from lsml_operator import main
from lsml_operator.kube_errors import Forbidden, ServerError
from lsml_operator.reconcile import Trigger
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import Harness

pytestmark = pytest.mark.unit

NS = "ns1"


def _mlb(name: str = "demo", **spec: Any) -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid=f"uid-mlb-{name}")
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def test_a_failed_full_pass_is_retried_by_the_timer_after_a_backoff(harness: Harness):
    h = harness
    mlb = _mlb()
    h.kube.forbidden.add("Deployment")  # RBAC refuses the server Deployment: the creation pass raises
    with pytest.raises(Forbidden):
        h.rec.reconcile(mlb, Trigger.CREATE)
    assert ("Warning", "PassFailed", "the create pass failed (Forbidden); retried in 5s") in h.events
    for delay in (5, 10, 20):  # retry_base_seconds 5, doubling
        h.clock.now += delay - 0.5
        assert h.rec.tick_due(mlb) is None, f"within the {delay}s backoff"
        h.clock.now += 0.5
        assert h.rec.tick_due(mlb) is Trigger.RESYNC, f"after the {delay}s backoff"
        with pytest.raises(Forbidden):
            h.rec.reconcile(mlb, Trigger.RESYNC)
    h.kube.forbidden.clear()
    h.clock.now += 40
    assert h.rec.tick_due(mlb) is Trigger.RESYNC
    h.rec.reconcile(mlb, Trigger.RESYNC)
    assert ("Deployment", NS, "demo-server") in h.kube.objects
    assert h.rec.tick_due(mlb) is None, "a full pass that succeeded clears the backoff"


def test_a_failed_pass_event_names_the_reason_not_the_answer_body(harness: Harness):
    """An API server's answer may quote what it was sent; the Event (kubectl describe, anyone with events access)
    says only the status reason."""
    h = harness
    h.kube.status_error = ServerError(500, "Internal Server Error", body='{"message": "rejected token s3cret-value"}')
    with pytest.raises(ServerError):
        h.rec.reconcile(_mlb(), Trigger.CREATE)
    failed = [msg for _, reason, msg in h.events if reason == "PassFailed"]
    assert failed == ["the create pass failed (Internal Server Error); retried in 5s"]
    assert not any("s3cret" in msg for _, _, msg in h.events)


def test_a_child_event_pass_that_fails_is_not_a_full_pass_to_retry(harness: Harness):
    """Only full passes (creation, update, resume, resync) are retried by the timer: a child event's pass that fails
    leaves its retry to the next event or tick, as before."""
    h = harness
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)
    h.kube.status_error = ServerError(500, "Internal Server Error")
    h.kube.forbidden.add("Service")
    del h.kube.objects[("Service", NS, "demo")]
    h.rec.observe_child({"kind": "Service", "metadata": {"name": "demo", "namespace": NS}})
    with pytest.raises(Forbidden):
        h.rec.reconcile(mlb, Trigger.CHILD_EVENT)
    assert "PassFailed" not in h.reasons()
    assert h.rec.tick_due(mlb) is None


def test_a_handed_off_pass_runs_with_the_latest_watched_body(harness: Harness):
    h = harness
    first, changed = _mlb(), _mlb(server={"replicas": 3})
    h.rec.observe_parent("ADDED", first)
    h.rec.observe_parent("MODIFIED", changed)  # a spec change watched before the creation pass got a thread
    h.rec.run_handed_off((NS, "demo"), Trigger.CREATE)
    assert h.kube.objects[("Deployment", NS, "demo-server")]["spec"]["replicas"] == 3


def test_a_handed_off_pass_of_an_mlbackend_being_deleted_does_nothing(harness: Harness):
    h = harness
    mlb = _mlb()
    mlb["metadata"]["deletionTimestamp"] = "2026-12-07T15:00:00Z"
    h.rec.observe_parent("MODIFIED", mlb)
    assert h.rec.run_handed_off((NS, "demo"), Trigger.CREATE) is None
    assert h.kube.calls == []


def test_the_creation_handler_returns_before_its_pass_runs(harness: Harness):
    """The handler only queues: with every pool thread busy it still returns at once, and the pass runs when a
    thread is free."""
    h = harness
    h.rec.observe_parent("ADDED", _mlb())
    busy, done = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(busy.wait, 30)  # the pool's only thread is taken
    memo = kopf.Memo(executor=pool, reconciler=h.rec)

    async def create_then_release() -> bool:
        main._hand_off(memo, kopf.Body(_mlb()), Trigger.CREATE)
        queued_only = ("Deployment", NS, "demo-server") not in h.kube.objects
        busy.set()
        await asyncio.get_running_loop().run_in_executor(pool, done.set)  # after the queued pass, on the same thread
        return queued_only

    try:
        assert asyncio.run(create_then_release()), "the handler returned before the pass ran"
    finally:
        busy.set()
        pool.shutdown(wait=True)
    assert done.is_set()
    assert ("Deployment", NS, "demo-server") in h.kube.objects, "the pass ran when the thread was free"
