"""The reconciler's use of pod_diagnosis, with the in-memory Kube of tests/fixtures/operator_fakes.py (no
cluster): pods are listed only while a component is unavailable, their cause lands in the condition and in
Ready, and the timer keeps re-checking an unavailable backend (a pull error turns into a back-off without
any Deployment event)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lsml_operator.keys import key_of
from lsml_operator.kube import Forbidden
from lsml_operator.reconcile import Reconciler, Trigger
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE, FakeKube, Harness

pytestmark = pytest.mark.unit

UNAVAILABLE = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0}
PULLING = {
    "metadata": {"name": "demo-server-1", "labels": {"app.kubernetes.io/component": "server"}},
    "spec": {},
    "status": {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "server",
                "image": "lsml/runtime:nope",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}},
            }
        ],
    },
}


def _setup() -> tuple[FakeKube, Reconciler, dict[str, Any]]:
    h = Harness()
    kube, rec = h.kube, h.rec
    mlb = with_identity(example("mlbackend-minimal.yaml"))
    mlb["metadata"]["name"] = "demo"
    return kube, rec, mlb


def _lists(kube: FakeKube) -> list[tuple[str, str, str]]:
    return [c for c in kube.calls if c[0] == "list"]


def _cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_no_pod_list_when_everything_is_available():
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = AVAILABLE
    status = rec.reconcile(mlb, Trigger.CREATE)
    assert status is not None and _cond(status, "Ready")["status"] == "True"
    assert _lists(kube) == []
    assert rec.tick_due(mlb) is None


def test_unavailable_server_names_the_pull_error_and_the_timer_keeps_checking():
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.pods = [PULLING]
    status = rec.reconcile(mlb, Trigger.CREATE)
    assert status is not None
    assert _lists(kube) == [
        (
            "list",
            "Pod",
            "app.kubernetes.io/name=lsml,app.kubernetes.io/instance=demo,app.kubernetes.io/managed-by=lsml-operator",
        )
    ]
    server = _cond(status, "ServerAvailable")
    assert server["reason"] == "ImagePullFailed"
    assert server["message"].startswith(
        "server: 0/1 replicas available: pod demo-server-1: container server cannot pull image"
    )
    ready = _cond(status, "Ready")
    assert ready["reason"] == "ImagePullFailed" and "pull access denied" in ready["message"]
    assert rec.tick_due(mlb) is None, "the CREATE pass has just read the pods, and its explanation is no new cause"
    rec.clock.now += rec.settings.timer_seconds
    assert rec.tick_due(mlb) is Trigger.DIAGNOSE
    # the pod recovers: the next (timer) pass finds no cause, the plain replica count comes back
    kube.pods = []
    status = rec.reconcile(mlb, Trigger.DIAGNOSE)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert len(_lists(kube)) == 2


def test_a_refused_pod_list_keeps_the_replica_count_and_warns_once(caplog):
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.list_error = Forbidden(403, "Forbidden")
    with caplog.at_level(logging.DEBUG, logger="lsml_operator"):
        status = rec.reconcile(mlb, Trigger.CREATE)
        rec.reconcile(mlb, Trigger.DIAGNOSE)  # the timer's next pass
    assert status is not None
    assert _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert _cond(status, "ServerAvailable")["message"] == "server: 0/1 replicas available"
    refused = [r for r in caplog.records if "cannot list pods" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.WARNING, logging.DEBUG]


def test_child_events_reuse_the_last_diagnosis_and_the_timer_reads_the_pods_again():
    """A rollout's events must not each LIST the backend's pods (a thousand backends ramping up)."""
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.pods = [PULLING]
    rec.reconcile(mlb, Trigger.CREATE)
    assert len(_lists(kube)) == 1
    for _ in range(5):
        status = rec.reconcile(mlb, Trigger.CHILD_EVENT)
        assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ImagePullFailed"
    assert len(_lists(kube)) == 1, "the cause found is kept between diagnoses"
    kube.pods = []
    status = rec.reconcile(mlb, Trigger.DIAGNOSE)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert len(_lists(kube)) == 2


def test_a_child_event_reads_no_pods_for_a_newly_failing_condition_and_the_timer_does():
    """A thousand backends ramping up move their conditions with every rollout event: the LIST waits for the
    timer (its next tick, at once for new causes), never for the event."""
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = AVAILABLE
    rec.reconcile(mlb, Trigger.CREATE)
    assert _lists(kube) == []
    # the server's pod dies and cannot be pulled again: the Deployment's watch event brings the pass
    kube.pods = [PULLING]
    live = kube.objects[("Deployment", mlb["metadata"]["namespace"], "demo-server")]
    live["status"] = dict(UNAVAILABLE)
    rec.observe_child(live)
    status = rec.reconcile(mlb, Trigger.CHILD_EVENT)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert _lists(kube) == [], "no LIST in a child event's pass"
    assert rec.tick_due(mlb) is Trigger.DIAGNOSE, "the new cause is due at the timer's next tick"
    status = rec.reconcile(mlb, Trigger.DIAGNOSE)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ImagePullFailed"
    assert len(_lists(kube)) == 1


def test_a_diagnosis_the_busy_object_could_not_run_is_due_again_at_the_next_tick():
    """A DIAGNOSE tick that finds a pass running only asks for a re-run, which reads no pods (a child event's
    policy): the diagnosis must not count as done, or its backoff would push the pods' cause back for minutes."""
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.pods = [PULLING]
    rec.reconcile(mlb, Trigger.CREATE)
    rec.clock.now += rec.settings.timer_seconds
    assert rec.tick_due(mlb) is Trigger.DIAGNOSE
    running = rec._lock(key_of(mlb))
    with running:  # another pass of this MLBackend holds it
        assert rec.reconcile(mlb, Trigger.DIAGNOSE) is None
    assert rec.tick_due(mlb) is Trigger.DIAGNOSE, "due again at once, not after a backoff"
    status = rec.reconcile(mlb, Trigger.DIAGNOSE)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ImagePullFailed"


def test_the_resync_reads_the_pods_of_a_failing_component():
    """The resync takes the timer's tick when both are due: with a resync period at or under the timer's, a
    failure that began after creation would otherwise never be explained."""
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    status = rec.reconcile(mlb, Trigger.CREATE)  # no pod yet: nothing to explain
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    kube.pods = [PULLING]
    lists = len(_lists(kube))
    rec.clock.now += rec.settings.resync_seconds
    status = rec.reconcile(mlb, Trigger.RESYNC)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ImagePullFailed"
    assert len(_lists(kube)) == lists + 1


def test_a_resync_reads_the_pods_only_when_the_diagnosis_is_due():
    """A thousand backends waiting for their claims: each resync must not add a pod LIST to the timer's backed-off
    diagnoses (it doubled the LISTs of the 1,000-MLBackend bench); the resync takes the diagnosis' turn instead."""
    kube, rec, mlb = _setup()
    clock = rec.clock
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.pods = [PULLING]
    rec.reconcile(mlb, Trigger.CREATE)
    clock.now += rec.settings.timer_seconds
    assert rec.tick_due(mlb) is Trigger.DIAGNOSE
    rec.reconcile(mlb, Trigger.DIAGNOSE)
    lists = len(_lists(kube))
    clock.now += 1  # within the diagnosis' backoff (the timer's period)
    status = rec.reconcile(mlb, Trigger.RESYNC)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ImagePullFailed", "the cause kept"
    assert len(_lists(kube)) == lists, "no LIST: the diagnosis is not due"
    clock.now += 2 * rec.settings.timer_seconds  # the backoff is over: this resync reads, and the tick then does not
    rec.reconcile(mlb, Trigger.RESYNC)
    assert len(_lists(kube)) == lists + 1
    assert rec.tick_due(mlb) is None
