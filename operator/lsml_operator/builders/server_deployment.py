"""The server Deployment: gunicorn serving the backend's ``_wsgi:app`` from /app."""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L

# Endpoint removal reaches kube-proxy and Label Studio's connection pools a moment after SIGTERM
# would: the pod keeps serving for this long first (the native sleep action needs no binary in the
# image), then gunicorn finishes its in-flight requests within its graceful timeout.
PRE_STOP_SLEEP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 45


def default_command(port: int) -> list[str]:
    """What the runtime image runs when spec.command is unset: gunicorn on the container port, app in /app."""
    return [
        "gunicorn", "--chdir", "/app", "--bind", f"0.0.0.0:{port}",
        "--workers", "1", "--threads", "8", "--timeout", "120",
        "--worker-tmp-dir", "/tmp", "_wsgi:app",
    ]


def build(mlb: dict[str, Any], *, config_hash: str) -> dict[str, Any]:
    """Deployment for the server; replicas are left out when an HPA owns them, so the two never fight."""
    spec = C.Spec(mlb)
    server = spec.server
    port = spec.container_port
    container = C.runtime_container(
        spec, server, name="server", command=spec.raw.get("command") or default_command(port),
        args=spec.raw.get("args"), include_basic_auth=True,
        ports=[{"name": "http", "containerPort": port, "protocol": "TCP"}],
        # /healthz and /readyz are unauthenticated in the runtime, so probes work with basic auth on.
        livenessProbe={
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6,
        },
        readinessProbe={
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3,
        },
        startupProbe={
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60,
        },
        lifecycle={"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
    )

    annotations = {C.CONFIG_HASH_ANNOTATION: config_hash, **(server.get("podAnnotations") or {})}
    pod_spec = C.runtime_pod_spec(spec, server, container)
    pod_spec["terminationGracePeriodSeconds"] = TERMINATION_GRACE_SECONDS

    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": L.selector_labels(spec.name, L.SERVER)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": L.labels(spec.name, L.SERVER), "annotations": annotations},
            "spec": pod_spec,
        },
    }
    if spec.hpa is None:
        deployment_spec["replicas"] = spec.server_replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": C.object_meta(mlb, L.server_name(spec.name), L.SERVER),
        "spec": deployment_spec,
    }
