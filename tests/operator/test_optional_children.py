"""Optional children follow the spec both ways: an HPA appears with spec.hpa (and takes the replica count
over), and disappears again when spec.hpa is removed; likewise the worker with worker.enabled."""

from __future__ import annotations

import copy
import json

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import WATCHED, apply_yaml, condition, get_mlb, patch_mlb

pytestmark = pytest.mark.kubernetes
NS = WATCHED[1]
NAME = "opt-check"


def _get(cluster, kind, name):
    proc = cluster.kubectl("get", kind, name, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_hpa_and_worker_come_and_go_with_the_spec(k8s_cluster, running_operator):
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": NAME, "namespace": NS}
    mlb["spec"]["hpa"] = {"minReplicas": 2, "maxReplicas": 4}
    mlb["spec"]["redis"] = {"external": {"urlSecretRef": {"name": "redis-url"}}}
    mlb["spec"]["storage"] = {"existingClaim": "shared-models"}
    mlb["spec"]["worker"] = {"enabled": True}
    apply_yaml(k8s_cluster, mlb, NS)
    try:
        hpa = wait_for(lambda: _get(k8s_cluster, "hpa", f"{NAME}-server"), timeout=60, message="HPA created")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{NAME}-server"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        worker = wait_for(lambda: _get(k8s_cluster, "deployment", f"{NAME}-worker"), timeout=60, message="worker")
        env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-url", "key": "url"}
        assert _get(k8s_cluster, "statefulset", f"{NAME}-redis") is None  # external Redis: none managed
        assert _get(k8s_cluster, "pvc", f"{NAME}-models") is None  # existing claim: none made
        c = wait_for(lambda: condition(get_mlb(k8s_cluster, NS, NAME), "RedisReady"), timeout=30, message="RedisReady")
        assert c["reason"] == "External"

        patch_mlb(k8s_cluster, NS, NAME, {"hpa": None, "worker": {"enabled": False}, "server": {"replicas": 3}})
        wait_for(lambda: _get(k8s_cluster, "hpa", f"{NAME}-server") is None, timeout=60, message="HPA deleted")
        wait_for(
            lambda: _get(k8s_cluster, "deployment", f"{NAME}-worker") is None, timeout=60, message="worker deleted"
        )
        wait_for(
            lambda: _get(k8s_cluster, "deployment", f"{NAME}-server")["spec"]["replicas"] == 3,
            timeout=60,
            message="server replicas back under the operator's control",
        )
        got = get_mlb(k8s_cluster, NS, NAME)
        wait_for(
            lambda: condition(get_mlb(k8s_cluster, NS, NAME), "WorkerAvailable") is None,
            timeout=30,
            message="WorkerAvailable condition removed with the worker",
        )
        assert got["metadata"]["name"] == NAME
    finally:
        k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
