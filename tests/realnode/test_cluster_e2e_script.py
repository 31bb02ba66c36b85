"""``hack/cluster-e2e.sh``, the cluster half of ``hack/kind-e2e.sh``, run as a user would on the real node.

kind is not on this machine (its node image comes from a registry), so CI proves the script that
kind-e2e.sh hands over to after ``kind load``: the chart's helm release with lsml's operator image,
the minimal example with the text_classifier image, Ready=True and ``/health`` answered through the
API server's service proxy, i.e. from the backend pod on the node.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.kubernetes import KubernetesCluster

from .cluster import images

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode]

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "cluster-e2e.sh"
NS = "lsml-cluster-e2e"


def test_cluster_e2e_script_installs_applies_and_reaches_ready_on_the_real_node(
    real_node_cluster: KubernetesCluster, operator_in_cluster: str
) -> None:
    refs = images(real_node_cluster)
    try:
        proc = subprocess.run(
            [str(SCRIPT), refs["operator"], refs["text_classifier"], NS],
            capture_output=True,
            text=True,
            timeout=600,
            env=real_node_cluster.env(),
        )
        assert proc.returncode == 0, f"cluster-e2e.sh exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "cluster-e2e: Ready" in proc.stdout
        assert '"UP"' in proc.stdout, proc.stdout
        mlb = real_node_cluster.kubectl(
            "get", "mlb", "text-classifier-minimal", "-n", NS, "-o", "jsonpath={.spec.image}"
        ).stdout
        assert mlb == refs["text_classifier"]
    finally:
        real_node_cluster.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False, timeout=150)


def test_cluster_e2e_script_refuses_missing_arguments(real_node_cluster: KubernetesCluster) -> None:
    proc = subprocess.run(
        [str(SCRIPT), "lsml/operator:x"], capture_output=True, text=True, timeout=30, env=real_node_cluster.env()
    )
    assert proc.returncode == 2
    assert "Usage: hack/cluster-e2e.sh" in proc.stderr
