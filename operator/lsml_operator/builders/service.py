"""The server's Service: the stable in-cluster URL Label Studio (in the cluster) registers."""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L


def build(mlb: dict[str, Any]) -> dict[str, Any]:
    spec = C.Spec(mlb)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": C.object_meta(mlb, L.service_name(spec.name), L.SERVER),
        "spec": {
            "type": spec.service_type,
            "selector": L.selector_labels(spec.name, L.SERVER),
            "ports": [{"name": "http", "port": spec.service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
