"""A child's name taken by someone else's object: nothing of the backend is sent to it and no pod uses it.

The threat model's untrusted namespace user may create Services, Deployments, Secrets and claims but not
MLBackends. Refusing to adopt their object was not enough: with the backend's Service squatted (an
ExternalName to their host will do) Label Studio was still registered at the Service's name and the quality
poll sent it the Basic credentials; with the managed Redis' Service, StatefulSet, password Secret or the model
claim squatted, the server and worker pods sent the Redis password and `/setup` tokens to it, or loaded models
from it. The control plane's version of the adoption refusal is tests/operator/test_security.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lsml_operator.reconcile import Trigger
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE, Harness

pytestmark = pytest.mark.unit

NS = "ns1"


def _full_mlb() -> dict[str, Any]:
    """The example MLBackend: worker, managed Redis, a model claim, Basic auth and Label Studio."""
    body = with_identity(copy.deepcopy(example("mlbackend.yaml")), namespace=NS, uid="uid-mlb-demo")
    body["metadata"]["name"] = "demo"
    return body


def _harness() -> tuple[Harness, dict[str, Any]]:
    h = Harness()
    h.kube.put_secret(NS, "label-studio-token", {"token": "ls-token"})
    h.kube.put_secret(NS, "text-classifier-basic-auth", {"username": "ls", "password": "basic-password"})
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.status_by_kind["StatefulSet"] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1}
    return h, _full_mlb()


def _squat(h: Harness, kind: str, name: str) -> None:
    """Someone deletes the operator's child (a namespace user may) and creates their own of that name."""
    ck = (kind, NS, name)
    ours = h.kube.objects.pop(ck)
    h.rec.child_event("DELETED", ours)
    h.kube.objects[ck] = {
        "apiVersion": ours.get("apiVersion", "v1"),
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-foreign-{name}", "labels": {"owner": "someone"}},
        "spec": {"type": "ExternalName", "externalName": "attacker.example"} if kind == "Service" else {},
    }


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_a_squatted_service_is_not_registered_in_label_studio_nor_polled():
    h, mlb = _harness()
    status = h.rec.reconcile(mlb, Trigger.CREATE)
    assert _condition(status, "LabelStudioRegistered")["status"] == "True"
    assert h.ls.in_project(1)
    polled: list[str] = []
    h.rec.quality.client_factory = lambda url, auth, timeout: polled.append(url) or pytest.fail("polled")

    _squat(h, "Service", "demo")
    status = h.rec.reconcile(mlb, Trigger.RESYNC)
    owned = _condition(status, "ChildrenOwned")
    assert owned["status"] == "False" and f"Service {NS}/demo" in owned["message"], owned
    registered = _condition(status, "LabelStudioRegistered")
    assert registered["status"] == "False" and registered["reason"] == "ForeignObject", registered
    assert h.ls.in_project(1) == [], "the registration at the squatted Service's name was deleted"
    assert "Deregistered" in h.reasons()
    assert h.rec.poll_quality(mlb | {"status": status}) is False and polled == []
    assert h.kube.objects[("Service", NS, "demo")]["spec"]["externalName"] == "attacker.example"  # untouched

    # the name is free again: the operator's Service comes back and the backend is registered again
    foreign = h.kube.objects.pop(("Service", NS, "demo"))
    h.rec.child_event("DELETED", foreign)
    status = h.rec.reconcile(mlb, Trigger.RESYNC)
    assert _condition(status, "LabelStudioRegistered")["status"] == "True"
    assert len(h.ls.in_project(1)) == 1


@pytest.mark.parametrize(
    "kind,name",
    [
        ("Service", "demo-redis"),
        ("StatefulSet", "demo-redis"),
        ("PersistentVolumeClaim", "demo-models"),
    ],
)
def test_no_pod_runs_against_another_owners_redis_or_model_volume(kind, name):
    h, mlb = _harness()
    h.rec.reconcile(mlb, Trigger.CREATE)
    assert ("Deployment", NS, "demo-server") in h.kube.objects and ("Deployment", NS, "demo-worker") in h.kube.objects

    _squat(h, kind, name)
    status = h.rec.reconcile(mlb, Trigger.RESYNC)
    assert ("Deployment", NS, "demo-server") not in h.kube.objects
    assert ("Deployment", NS, "demo-worker") not in h.kube.objects
    withheld = [msg for _, reason, msg in h.events if reason == "PodsWithheld"]
    assert len(withheld) == 2 and all(f"{kind} {name}" in msg for msg in withheld), withheld
    assert _condition(status, "Ready")["status"] == "False"
    assert _condition(status, "LabelStudioRegistered")["reason"] == "ForeignObject"
    assert h.ls.in_project(1) == []
    h.rec.reconcile(mlb, Trigger.RESYNC)  # a second pass while it lasts: nothing more is deleted or applied
    assert [r for r in h.reasons() if r == "PodsWithheld"] == ["PodsWithheld", "PodsWithheld"]

    foreign = h.kube.objects.pop((kind, NS, name))
    h.rec.child_event("DELETED", foreign)
    h.rec.reconcile(mlb, Trigger.RESYNC)
    assert ("Deployment", NS, "demo-server") in h.kube.objects and ("Deployment", NS, "demo-worker") in h.kube.objects


def test_the_redis_password_secret_of_another_owner_runs_no_pod():
    """Created by someone else before the MLBackend: its author knows the password the pods would use."""
    h, mlb = _harness()
    h.kube.objects[("Secret", NS, "demo-redis-auth")] = {
        "kind": "Secret",
        "metadata": {"name": "demo-redis-auth", "namespace": NS, "resourceVersion": "1"},
        "data": {"password": "a25vd24="},
    }
    status = h.rec.reconcile(mlb, Trigger.CREATE)
    assert ("Deployment", NS, "demo-server") not in h.kube.objects
    assert ("Deployment", NS, "demo-worker") not in h.kube.objects
    assert f"Secret {NS}/demo-redis-auth" in _condition(status, "ChildrenOwned")["message"]
    assert h.ls.connections == []
