"""HorizontalPodAutoscaler (autoscaling/v2) for the server Deployment, only when spec.hpa is set."""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L


def build(mlb: dict[str, Any]) -> dict[str, Any] | None:
    spec = C.Spec(mlb)
    h = spec.hpa_spec
    if h is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": C.object_meta(mlb, L.hpa_name(spec.name), L.SERVER),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": L.server_name(spec.name)},
            "minReplicas": h.min_replicas,
            "maxReplicas": h.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": h.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }
