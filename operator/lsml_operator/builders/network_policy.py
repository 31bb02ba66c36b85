"""NetworkPolicy for the managed Redis: only this MLBackend's server and worker pods may reach its port.

Whoever can connect to that Redis can enqueue jobs the worker runs, so the password alone is not
the only fence: this policy keeps every other pod (other MLBackends' included) off the port.
It takes effect only where the cluster's network plugin enforces NetworkPolicies; elsewhere it is
inert, which is why Redis requires a password as well. ``spec.redis.networkPolicy: false`` opts out
(e.g. a namespace whose own default-deny policies already say who may talk to whom).
"""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L


def build(mlb: dict[str, Any]) -> dict[str, Any] | None:
    """The policy selecting the Redis pod; None without a managed Redis or when opted out."""
    spec = C.Spec(mlb)
    if not spec.redis_network_policy:
        return None
    clients = {
        "matchLabels": {
            k: v for k, v in L.selector_labels(spec.name, L.SERVER).items() if k != "app.kubernetes.io/component"
        },
        "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": [L.SERVER, L.WORKER]}],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": C.object_meta(mlb, L.network_policy_name(spec.name), L.REDIS),
        "spec": {
            "podSelector": {"matchLabels": L.selector_labels(spec.name, L.REDIS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": clients}],
                    "ports": [{"protocol": "TCP", "port": C.REDIS_PORT}],
                }
            ],
        },
    }
