"""The real-pod layer's shared names: where the operator and Label Studio live, and the node's images."""

from __future__ import annotations

from tests.fixtures.kubernetes import KubernetesCluster

OPERATOR_NS = "lsml-system"
LS_NS = "label-studio"
LS_SERVICE_PORT = 8080


def images(cluster: KubernetesCluster) -> dict[str, str]:
    """name -> image reference of lsml's images imported into the real node (hack/images/build's names)."""
    return cluster.control_plane.node.images
