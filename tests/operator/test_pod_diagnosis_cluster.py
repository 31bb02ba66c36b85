"""Status says why a backend is not available, on the real control plane (kwok nodes), with the operator
running under the chart's RBAC (it lists the pods and claims itself): a claim no volume binds to and a
pod no node accepts. Image pull and CrashLoopBackOff need a node that runs containers (see the report of
issue 9): their unit tests are in test_pod_diagnosis.py."""

from __future__ import annotations

import copy

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import WATCHED, apply_yaml, condition, get_mlb

pytestmark = pytest.mark.kubernetes
NS = WATCHED[1]


def _mlb(name: str, **spec) -> dict:
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    mlb["spec"].update(spec)
    return mlb


def _reason(cluster, name: str, ctype: str, reason: str) -> dict | None:
    c = condition(get_mlb(cluster, NS, name), ctype)
    return c if c and c["reason"] == reason else None


def _delete(cluster, name: str) -> None:
    cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)


def test_unbound_claims_are_named_with_their_storage_class(k8s_cluster, running_operator):
    name = "diag-claim"
    apply_yaml(
        k8s_cluster,
        _mlb(
            name,
            storage={"size": "1Gi", "storageClassName": "lsml-no-such-class"},
            redis={"managed": True, "storage": {"storageClassName": "lsml-no-such-class"}},
        ),
        NS,
    )
    try:
        server = wait_for(
            lambda: _reason(k8s_cluster, name, "ServerAvailable", "ClaimUnbound"),
            timeout=90,
            message="ServerAvailable reason ClaimUnbound",
        )
        assert server["status"] == "False"
        assert (
            f'PersistentVolumeClaim {name}-models is Pending (storageClassName "lsml-no-such-class")'
            in server["message"]
        )
        # "0/1 replicas updated" or "available", as first written: between full passes only a new reason is written
        assert server["message"].startswith("server: 0/1 replicas ") and ": pod diag-claim-server-" in server["message"]
        redis = wait_for(
            lambda: _reason(k8s_cluster, name, "RedisReady", "ClaimUnbound"),
            timeout=90,
            message="RedisReady reason ClaimUnbound",
        )
        assert f"PersistentVolumeClaim data-{name}-redis-0 is Pending" in redis["message"]
        ready = condition(get_mlb(k8s_cluster, NS, name), "Ready")
        assert ready["reason"] == "ClaimUnbound"
        row = k8s_cluster.kubectl("get", "mlb", name, "-n", NS).stdout
        assert "REASON" in row and "ClaimUnbound" in row, row
        wide = k8s_cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "wide").stdout
        assert "lsml-no-such-class" in wide, wide
    finally:
        _delete(k8s_cluster, name)


def test_unschedulable_pod_carries_the_schedulers_message(k8s_cluster, running_operator):
    name = "diag-sched"
    apply_yaml(k8s_cluster, _mlb(name, server={"replicas": 1, "nodeSelector": {"lsml.dev/no-such-node": "true"}}), NS)
    try:
        server = wait_for(
            lambda: _reason(k8s_cluster, name, "ServerAvailable", "Unschedulable"),
            timeout=90,
            message="ServerAvailable reason Unschedulable",
        )
        assert "cannot be scheduled: 0/" in server["message"]
        assert "didn't match Pod's node affinity/selector" in server["message"]
        # the fix is seen too: without the selector the pods run (kwok) and the cause goes away
        k8s_cluster.kubectl(
            "patch",
            "mlb",
            name,
            "-n",
            NS,
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/spec/server/nodeSelector"}]',
        )
        wait_for(
            lambda: (c := condition(get_mlb(k8s_cluster, NS, name), "Ready")) and c["status"] == "True",
            timeout=90,
            message="Ready once the pods can be scheduled",
        )
    finally:
        _delete(k8s_cluster, name)
