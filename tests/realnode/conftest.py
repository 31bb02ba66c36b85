"""Fixtures of the real-pod end-to-end layer: the operator in-cluster, Label Studio reachable both ways.

- ``operator_in_cluster``: ``helm install`` of charts/lsml-operator with lsml's operator image
  (built by hack/images/build and imported into the real node), so its ServiceAccount,
  RBAC, peering and liveness probe are the chart's, for real.
- ``cluster_label_studio``: the real Label Studio 1.23.2, on the host (it is far too heavy for
  an image built here), listening on the pod bridge's gateway address. Pods reach it through a
  Service without selector, ``label-studio.label-studio.svc:8080``, whose EndpointSlice
  points at it: the very URL ``examples/mlbackend.yaml`` names. Label Studio runs in a mount
  namespace of its own whose ``/etc/resolv.conf`` names the cluster's CoreDNS, so the backend
  URL the operator registers, ``http://<name>.<ns>.svc:<port>``, resolves to the Service's
  ClusterIP: every request Label Studio makes to the backend goes through kube-proxy's
  Service rules, as it would from a pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.label_studio import LabelStudioServer, find_label_studio_binary
from tests.fixtures.mlbackend import CHART
from tests.fixtures.processes import running

from .cluster import LS_NS, LS_SERVICE_PORT, OPERATOR_NS, images


@pytest.fixture(scope="session")
def operator_in_cluster(real_node_cluster: KubernetesCluster) -> Iterator[str]:
    """The chart installed with the operator image; yields the release namespace."""
    repository, tag = images(real_node_cluster)["operator"].rsplit(":", 1)
    real_node_cluster.helm(
        "upgrade",
        "--install",
        "lsml-operator",
        str(CHART),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "operator.timerSeconds=2",
        "--set",
        "operator.resyncSeconds=30",
        "--set",
        "operator.retryBaseSeconds=1",
        "--set",
        "operator.retryMaxSeconds=5",
        "--wait",
        "--timeout=240s",
        timeout=300,
    )
    real_node_cluster.kubectl(
        "rollout",
        "status",
        "deployment",
        "-n",
        OPERATOR_NS,
        "-l",
        "app.kubernetes.io/name=lsml-operator",
        "--timeout=120s",
    )
    yield OPERATOR_NS
    real_node_cluster.helm("uninstall", "lsml-operator", "--namespace", OPERATOR_NS, check=False)


@pytest.fixture(scope="session")
def cluster_label_studio(real_node_cluster: KubernetesCluster, tmp_path_factory) -> Iterator[LabelStudioServer]:
    """Label Studio on the gateway address, resolving cluster names, behind the Service label-studio."""
    node = real_node_cluster.control_plane.node
    work = tmp_path_factory.mktemp("ls-real-node")
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {node.net.gateway}\nsearch svc.cluster.local cluster.local\noptions ndots:5\n")
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" /etc/resolv.conf && exec "$@"',
        str(resolv),
    ]
    server = LabelStudioServer(find_label_studio_binary(), work, host=node.net.gateway, wrapper=wrapper)
    for ls in running(server):
        real_node_cluster.kubectl("create", "namespace", LS_NS, check=False)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "label-studio", "namespace": LS_NS},
            "spec": {"ports": [{"name": "http", "port": LS_SERVICE_PORT, "targetPort": ls.port}]},
        }
        endpoints = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "label-studio-host",
                "namespace": LS_NS,
                "labels": {"kubernetes.io/service-name": "label-studio"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": ls.port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [node.net.gateway], "conditions": {"ready": True}}],
        }
        real_node_cluster.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, endpoints]})
        )
        wait_for(
            lambda: (
                real_node_cluster.kubectl("get", "service", "label-studio", "-n", LS_NS, check=False).returncode == 0
            ),
            30,
            message="Service label-studio",
        )
        yield ls
