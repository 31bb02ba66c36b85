"""The reconciler's use of pod_diagnosis, with an in-memory Kube (no cluster): pods are listed only while a
component is unavailable, their cause lands in the condition and in Ready, and the timer keeps re-checking
an unavailable backend (a pull error turns into a back-off without any Deployment event)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from lsml_operator.reconcile import Reconciler
from lsml_operator.settings import OperatorSettings

from .helpers import example, with_identity


class MemoryKube:
    """Apply answers with the object plus the status a test set for its kind; LISTs are counted."""

    def __init__(self) -> None:
        self.status_by_kind: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.lists: list[tuple[str, str, str]] = []
        self.written: list[dict[str, Any]] = []
        self.list_error: ApiException | None = None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["metadata"].update({"generation": 1, "resourceVersion": "1", "uid": "u-" + obj["metadata"]["name"]})
        out["status"] = copy.deepcopy(self.status_by_kind.get(obj["kind"], {}))
        return out

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None  # no object of a child's name exists before the operator writes it (no adoption question)

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.lists.append((kind, namespace, selector))
        if self.list_error is not None:
            raise self.list_error
        return copy.deepcopy(self.pods) if kind == "Pod" else []

    def patch_mlbackend_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.written.append(copy.deepcopy(status))
        return {"status": status}


AVAILABLE = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
UNAVAILABLE = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0}
PULLING = {"metadata": {"name": "demo-server-1", "labels": {"app.kubernetes.io/component": "server"}},
           "spec": {}, "status": {"phase": "Pending", "containerStatuses": [
               {"name": "server", "image": "lsml/runtime:nope", "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}]}}


def _setup() -> tuple[MemoryKube, Reconciler, dict[str, Any]]:
    kube = MemoryKube()
    rec = Reconciler(kube, OperatorSettings(resync_seconds=3600))  # type: ignore[arg-type]
    mlb = with_identity(example("mlbackend-minimal.yaml"))
    mlb["metadata"]["name"] = "demo"
    return kube, rec, mlb


def _cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_no_pod_list_when_everything_is_available():
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = AVAILABLE
    status = rec.reconcile(mlb, full=True)
    assert status is not None and _cond(status, "Ready")["status"] == "True"
    assert kube.lists == []
    assert rec.tick_due(mlb) is None


def test_unavailable_server_names_the_pull_error_and_the_timer_keeps_checking():
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.pods = [PULLING]
    status = rec.reconcile(mlb, full=True)
    assert status is not None
    assert kube.lists == [("Pod", "ns1", "app.kubernetes.io/name=lsml,app.kubernetes.io/instance=demo,"
                                         "app.kubernetes.io/managed-by=lsml-operator")]
    server = _cond(status, "ServerAvailable")
    assert server["reason"] == "ImagePullFailed"
    assert server["message"].startswith("server: 0/1 replicas available: pod demo-server-1: container server cannot pull image")
    ready = _cond(status, "Ready")
    assert ready["reason"] == "ImagePullFailed" and "pull access denied" in ready["message"]
    assert rec.tick_due(mlb) == "diagnose"
    # the pod recovers: the next (timer) pass finds no cause, the plain replica count comes back
    kube.pods = []
    status = rec.reconcile(mlb, coalesce=True)
    assert status is not None and _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert len(kube.lists) == 2


def test_a_refused_pod_list_keeps_the_replica_count_and_warns_once(caplog):
    kube, rec, mlb = _setup()
    kube.status_by_kind["Deployment"] = UNAVAILABLE
    kube.list_error = ApiException(status=403, reason="Forbidden")
    with caplog.at_level(logging.DEBUG, logger="lsml_operator"):
        status = rec.reconcile(mlb, full=True)
        rec.reconcile(mlb, coalesce=True)  # the timer's next pass
    assert status is not None
    assert _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert _cond(status, "ServerAvailable")["message"] == "server: 0/1 replicas available"
    refused = [r for r in caplog.records if "cannot list pods" in r.getMessage()]
    assert [r.levelno for r in refused] == [logging.WARNING, logging.DEBUG]
