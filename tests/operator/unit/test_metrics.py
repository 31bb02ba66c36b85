"""The operator's metrics (lsml_operator.metrics) as reconcile passes on the in-memory fakes move them: passes by
trigger and result, their duration, Label Studio registration failures per attempt, MLBackends by Ready reason."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from lsml_operator.keys import key_of
from lsml_operator.kube import Invalid
from lsml_operator.reconcile import Trigger
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE

pytestmark = pytest.mark.unit

NS = "ns1"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _mlb(name: str = "metrics-demo", **spec):
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid=f"uid-{name}")
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def test_passes_are_counted_by_trigger_and_result_and_timed(harness):
    ok = _value("lsml_operator_reconciles_total", trigger="create", result="ok")
    errors = _value("lsml_operator_reconciles_total", trigger="resync", result="error")
    timed = _value("lsml_operator_reconcile_duration_seconds_count")
    harness.rec.reconcile(_mlb(), Trigger.CREATE)
    assert _value("lsml_operator_reconciles_total", trigger="create", result="ok") == ok + 1
    # a pass that raises: the Service lost our owner reference and the API server refuses the apply
    harness.kube.objects[("Service", NS, "metrics-demo")]["metadata"]["ownerReferences"] = []
    harness.rec.observe_child(harness.kube.objects[("Service", NS, "metrics-demo")])  # the watch shows it
    harness.kube.invalid_once.add(("Service", NS, "metrics-demo"))
    with pytest.raises(Invalid):
        harness.rec.reconcile(_mlb(), Trigger.RESYNC)
    assert _value("lsml_operator_reconciles_total", trigger="resync", result="error") == errors + 1
    assert _value("lsml_operator_reconcile_duration_seconds_count") == timed + 2


def test_registration_failures_count_attempts_not_passes(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.put_secret(NS, "ls-token", {"token": "tok-secret"})
    mlb = _mlb(
        labelStudio={"url": "http://ls.example:8080", "apiTokenSecretRef": {"name": "ls-token"}, "projects": [1]}
    )
    before = _value("lsml_operator_registration_failures_total", reason="LabelStudioUnreachable")
    h.ls.down = True
    h.rec.reconcile(mlb, Trigger.CREATE)
    assert _value("lsml_operator_registration_failures_total", reason="LabelStudioUnreachable") == before + 1
    h.rec.reconcile(mlb, Trigger.CHILD_EVENT)  # within the backoff: no attempt, nothing counted
    assert _value("lsml_operator_registration_failures_total", reason="LabelStudioUnreachable") == before + 1
    h.clock.now += 5
    h.rec.reconcile(mlb, Trigger.RETRY)
    assert _value("lsml_operator_registration_failures_total", reason="LabelStudioUnreachable") == before + 2


def test_mlbackends_are_counted_by_ready_reason_and_forgotten_when_deleted(harness):
    h = harness
    waiting = _value("lsml_operator_mlbackends", ready="False", reason="RolloutPending")
    ready = _value("lsml_operator_mlbackends", ready="True", reason="Ready")
    h.rec.reconcile(_mlb("m-a"), Trigger.CREATE)
    h.rec.reconcile(_mlb("m-b"), Trigger.CREATE)
    reason = _value("lsml_operator_mlbackends", ready="False", reason="RolloutPending")
    assert reason == waiting + 2, "two MLBackends whose fake Deployments are not rolled out"
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.rec.reconcile(_mlb("m-a"), Trigger.RESYNC)
    assert _value("lsml_operator_mlbackends", ready="True", reason="Ready") == ready + 1
    assert _value("lsml_operator_mlbackends", ready="False", reason="RolloutPending") == waiting + 1
    h.rec.forget(key_of(_mlb("m-b")))
    assert _value("lsml_operator_mlbackends", ready="False", reason="RolloutPending") == waiting
