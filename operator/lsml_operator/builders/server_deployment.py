"""The server Deployment: gunicorn serving the backend's ``_wsgi:app`` from /app."""

from __future__ import annotations

from typing import Any

from lsml import setting_names

from . import common as C
from . import labels as L
from . import pod_annotations as A

# Endpoint removal reaches kube-proxy and Label Studio's connection pools a moment after SIGTERM
# would: the pod keeps serving for this long first (the native sleep action needs no binary in the
# image), then gunicorn finishes its in-flight requests within its graceful timeout.
PRE_STOP_SLEEP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 45


#: lsml's one serving command (runtime/lsml/server/gunicorn_conf.py); its knobs are environment.
SERVE_COMMAND = ["gunicorn", "--config", "python:lsml.server.gunicorn_conf", "_wsgi:app"]


def default_command() -> list[str]:
    """What the server runs when spec.command is unset: the image's own CMD (the same in every deployment)."""
    return list(SERVE_COMMAND)


def serving_env(port: int) -> list[dict[str, Any]]:
    """The serving knobs (lsml.settings.ServingSettings) the operator decides; spec.model.env may override them.

    One gunicorn worker per pod (pods scale out, by hand or by the HPA), 8 threads.
    """
    return [
        {"name": setting_names.PORT, "value": str(port)},
        {"name": setting_names.WORKERS, "value": "1"},
        {"name": setting_names.THREADS, "value": str(setting_names.DEFAULT_THREADS)},
        {"name": setting_names.LSML_BACKEND_DIR, "value": "/app"},
    ]


def build(mlb: dict[str, Any], *, config_hash: str) -> dict[str, Any]:
    """Deployment for the server; replicas are left out when an HPA owns them, so the two never fight."""
    spec = C.Spec(mlb)
    server = spec.server
    port = spec.container_port
    container = C.runtime_container(
        spec,
        server,
        name="server",
        command=spec.raw.get("command") or default_command(),
        args=spec.raw.get("args"),
        include_basic_auth=True,
        extra_env=serving_env(port),
        ports=[{"name": "http", "containerPort": port, "protocol": "TCP"}],
        # /healthz and /readyz are unauthenticated in the runtime, so probes work with basic auth on.
        livenessProbe={
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        readinessProbe={
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        startupProbe={
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 60,
        },
        lifecycle={"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
    )

    annotations = A.merged(server.get("podAnnotations"), {C.CONFIG_HASH_ANNOTATION: config_hash})
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
