"""Status names why a backend is not available, on the real node: an image the node cannot get, a server
that keeps crashing (causes kwok cannot produce), claims no volume binds to and pods no node can take,
for the server, the worker and the managed Redis. The operator runs in-cluster from its image, under the
chart's RBAC (it lists the pods and claims itself). The same on kwok nodes: tests/operator/
test_pod_diagnosis_cluster.py; every cause with realistic objects: tests/operator/test_pod_diagnosis.py."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.mlbackend import example

from .cluster import images

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode]

NS = "lsml-diag"
SECRET_VALUE = "pw-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def ns(real_node_cluster: KubernetesCluster, operator_in_cluster: str) -> Iterator[str]:
    real_node_cluster.kubectl("create", "namespace", NS, check=False)
    yield NS
    real_node_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@contextmanager
def _backend(cluster: KubernetesCluster, name: str, **spec) -> Iterator[str]:
    """The minimal example with `spec` merged in, applied for one test and deleted after it."""
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    mlb["spec"].update(spec)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(mlb))
    try:
        yield name
    finally:
        cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)


def _row(cluster: KubernetesCluster, name: str) -> str:
    """What `kubectl get mlb` shows (its Reason column)."""
    return cluster.kubectl("get", "mlb", name, "-n", NS).stdout


def _condition(cluster: KubernetesCluster, name: str, ctype: str, reason: str) -> dict | None:
    proc = cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    conds = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    c = next((c for c in conds if c["type"] == ctype), None)
    return c if c and c["reason"] == reason else None


def test_an_image_the_node_cannot_get_is_named(real_node_cluster, ns):
    name = "diag-image"
    with _backend(real_node_cluster, name, image="lsml.local/never-built:1", imagePullPolicy="Never"):
        c = wait_for(
            lambda: _condition(real_node_cluster, name, "ServerAvailable", "ImagePullFailed"),
            timeout=120,
            message="ServerAvailable reason ImagePullFailed",
        )
        assert "container server cannot pull image lsml.local/never-built:1: ErrImageNeverPull" in c["message"], c
        assert "ImagePullFailed" in _row(real_node_cluster, name)


def test_a_crashing_server_is_named_with_its_last_exit(real_node_cluster, ns):
    name = "diag-crash"
    crash = "import sys; sys.stderr.write('model failed to load\\n'); sys.exit(3)"
    with _backend(
        real_node_cluster,
        name,
        image=images(real_node_cluster)["runtime"],
        imagePullPolicy="Never",
        command=["python", "-c", crash],
        model={"env": [{"name": "SOME_TOKEN", "value": SECRET_VALUE}]},
    ):
        c = wait_for(
            lambda: _condition(real_node_cluster, name, "ServerAvailable", "CrashLoopBackOff"),
            timeout=180,
            message="ServerAvailable reason CrashLoopBackOff",
        )
        assert "container server keeps crashing" in c["message"], c
        assert "last exit: Error (exit code 3)" in c["message"], c
        # the env value sits in the spec (the user put it there), never in what the operator writes
        status = real_node_cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "jsonpath={.status}").stdout
        assert "keeps crashing" in status and SECRET_VALUE not in status


def _conditions(cluster: KubernetesCluster, name: str, reason: str) -> dict[str, dict]:
    """ServerAvailable, WorkerAvailable and RedisReady once all three carry `reason`."""
    found = {
        ctype: _condition(cluster, name, ctype, reason)
        for ctype in ("ServerAvailable", "WorkerAvailable", "RedisReady")
    }
    return found if all(found.values()) else {}


def test_claims_no_volume_binds_to_are_named_for_server_worker_and_redis(real_node_cluster, ns):
    name = "diag-claim"
    missing = "lsml-no-such-class"
    redis = {"managed": True, "image": images(real_node_cluster)["redis"], "storage": {"storageClassName": missing}}
    with _backend(
        real_node_cluster,
        name,
        worker={"enabled": True},
        storage={"size": "1Gi", "storageClassName": missing},
        redis=redis,
    ):
        found = wait_for(
            lambda: _conditions(real_node_cluster, name, "ClaimUnbound"),
            timeout=120,
            message="server, worker and Redis conditions with reason ClaimUnbound",
        )
        claim = f'PersistentVolumeClaim {name}-models is Pending (storageClassName "{missing}")'
        for ctype, component in (("ServerAvailable", "server"), ("WorkerAvailable", "worker")):
            c = found[ctype]
            assert c["status"] == "False" and f": pod {name}-{component}-" in c["message"], c
            assert claim in c["message"], c
        assert f"PersistentVolumeClaim data-{name}-redis-0 is Pending" in found["RedisReady"]["message"], found
        assert "ClaimUnbound" in _row(real_node_cluster, name)


def test_pods_no_node_can_take_are_named_with_the_schedulers_message(real_node_cluster, ns):
    name = "diag-sched"
    too_much = {"requests": {"cpu": "64"}}  # more than the node (or any node) has
    with _backend(
        real_node_cluster,
        name,
        server={"replicas": 1, "nodeSelector": {"lsml.dev/no-such-node": "true"}},
        worker={"enabled": True, "resources": too_much},
        storage={"size": "1Gi"},
        redis={"managed": True, "image": images(real_node_cluster)["redis"], "resources": too_much},
    ):
        found = wait_for(
            lambda: _conditions(real_node_cluster, name, "Unschedulable"),
            timeout=120,
            message="server, worker and Redis conditions with reason Unschedulable",
        )
        for c in found.values():
            assert c["status"] == "False" and "cannot be scheduled: 0/" in c["message"], c
        assert "didn't match Pod's node affinity/selector" in found["ServerAvailable"]["message"], found
        assert "Insufficient cpu" in found["WorkerAvailable"]["message"], found
        assert "Insufficient cpu" in found["RedisReady"]["message"], found
        assert f"pod {name}-redis-0 cannot be scheduled" in found["RedisReady"]["message"], found
