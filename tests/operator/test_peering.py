"""Two operator processes on one kopf peering object (what 2 chart replicas are): one works, the other stands by."""

from __future__ import annotations

import copy
import json

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import WATCHED, OperatorProcess, apply_yaml, condition, get_mlb

pytestmark = pytest.mark.kubernetes
NS = WATCHED[1]


def test_second_replica_stands_by_while_the_first_works(k8s_cluster, running_operator, sa_kubeconfig, tmp_path):
    offset = len(running_operator.log())
    standby = OperatorProcess(sa_kubeconfig, tmp_path / "standby.log", WATCHED)
    standby.start(extra_args=["--priority=0"])  # the session's operator has a random priority >= 1
    try:

        def peers() -> dict:
            raw = k8s_cluster.kubectl("get", "kopfpeering", "lsml-operator", "-n", NS, "-o", "json").stdout
            return json.loads(raw).get("status") or {}

        # both processes are registered on the peering object, the standby with its priority 0
        wait_for(
            lambda: len(peers()) >= 2 and any(p.get("priority") == 0 for p in peers().values()),
            timeout=60,
            message="both replicas on the KopfPeering object",
        )
        mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
        mlb["metadata"] = {"name": "peer-check", "namespace": NS}
        apply_yaml(k8s_cluster, mlb, NS)
        wait_for(
            lambda: (c := condition(get_mlb(k8s_cluster, NS, "peer-check"), "Ready")) and c["status"] == "True",
            timeout=90,
            message="peer-check Ready (handled by the active replica)",
        )
        assert "Pausing" not in running_operator.log()[offset:], "the active replica paused too"
        # kopf starts paused and logs "Resuming" only when it becomes the active one
        assert "Resuming operations" not in standby.log(), "the standby replica became active"
        assert "peer-check" not in standby.log(), "the standby replica handled a resource"
    finally:
        standby.stop()
        k8s_cluster.kubectl("delete", "mlb", "peer-check", "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
    assert get_mlb(k8s_cluster, NS, "peer-check") is None
