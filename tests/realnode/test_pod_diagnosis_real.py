"""Status names why a backend is not available, on the real node (causes kwok cannot produce): an image the
node cannot get, and a server that keeps crashing. The operator runs in-cluster from its image, under the
chart's RBAC (it lists the pods itself). Unbound claims and unschedulable pods: tests/operator/
test_pod_diagnosis_cluster.py; every cause with realistic objects: tests/operator/test_pod_diagnosis.py."""

from __future__ import annotations

import copy
import json
import secrets
from typing import Iterator

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, wait_for

from ..operator.helpers import example
from .cluster import images

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode]

NS = "lsml-diag"
SECRET_VALUE = "pw-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def ns(real_node_cluster: KubernetesCluster, operator_in_cluster: str) -> Iterator[str]:
    real_node_cluster.kubectl("create", "namespace", NS, check=False)
    yield NS
    real_node_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _apply(cluster: KubernetesCluster, name: str, **spec) -> None:
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    mlb["spec"].update(spec)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(mlb))


def _condition(cluster: KubernetesCluster, name: str, ctype: str, reason: str) -> dict | None:
    proc = cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    conds = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    c = next((c for c in conds if c["type"] == ctype), None)
    return c if c and c["reason"] == reason else None


def test_an_image_the_node_cannot_get_is_named(real_node_cluster, ns):
    name = "diag-image"
    _apply(real_node_cluster, name, image="lsml.local/never-built:1", imagePullPolicy="Never")
    try:
        c = wait_for(lambda: _condition(real_node_cluster, name, "ServerAvailable", "ImagePullFailed"), timeout=120,
                     message="ServerAvailable reason ImagePullFailed")
        assert "container server cannot pull image lsml.local/never-built:1: ErrImageNeverPull" in c["message"], c
        row = real_node_cluster.kubectl("get", "mlb", name, "-n", NS).stdout
        assert "ImagePullFailed" in row, row
    finally:
        real_node_cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)


def test_a_crashing_server_is_named_with_its_last_exit(real_node_cluster, ns):
    name = "diag-crash"
    crash = "import sys; sys.stderr.write('model failed to load\\n'); sys.exit(3)"
    _apply(real_node_cluster, name, image=images(real_node_cluster)["runtime"], imagePullPolicy="Never",
           command=["python", "-c", crash],
           model={"env": [{"name": "SOME_TOKEN", "value": SECRET_VALUE}]})
    try:
        c = wait_for(lambda: _condition(real_node_cluster, name, "ServerAvailable", "CrashLoopBackOff"), timeout=180,
                     message="ServerAvailable reason CrashLoopBackOff")
        assert "container server keeps crashing" in c["message"], c
        assert "last exit: Error (exit code 3)" in c["message"], c
        # the env value sits in the spec (the user put it there), never in what the operator writes
        status = real_node_cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "jsonpath={.status}").stdout
        assert "keeps crashing" in status and SECRET_VALUE not in status
    finally:
        real_node_cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
