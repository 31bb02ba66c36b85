"""The real-pod layer's shared names: where the operator and Label Studio live, and the node's images."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures.kubernetes import KubernetesCluster

OPERATOR_NS = "lsml-system"
LS_NS = "label-studio"
LS_SERVICE_PORT = 8080


def images(cluster: KubernetesCluster) -> dict[str, str]:
    """name -> image reference of lsml's images imported into the real node (hack/images/build's names)."""
    return cluster.control_plane.node.images


def kube_json(cluster: KubernetesCluster, *args: str) -> Any:
    """`kubectl ARGS -o json`, parsed."""
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def pod_ready(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and all(
        c.get("ready") for c in pod["status"].get("containerStatuses", []) or [{}]
    )


def mlb_condition(mlb: dict, kind: str) -> dict:
    """The MLBackend's status condition of type `kind` ({} when it has none yet)."""
    return next((c for c in mlb.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def apply_backend_secrets(cluster: KubernetesCluster, namespace: str, token: str, auth: tuple[str, str]) -> None:
    """The Secrets an MLBackend of these tests names: Label Studio's token (`label-studio-token`, key `token`)
    and the backend's Basic auth (`backend-auth`, keys `user` and `password`)."""
    items = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "label-studio-token"},
            "stringData": {"token": token},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "backend-auth"},
            "stringData": {"user": auth[0], "password": auth[1]},
        },
    ]
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
