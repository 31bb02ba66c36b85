"""The worker Deployment: ``label-studio-ml worker /app`` taking training jobs from Redis.

It mounts the same model volume as the server: the worker publishes new versions there
and the server hot-reloads them (docs/architecture.md, Store).
"""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L

DEFAULT_COMMAND = ["label-studio-ml", "worker", "/app"]


def build(mlb: dict[str, Any], *, config_hash: str) -> dict[str, Any]:
    """Deployment for the RQ worker (no HTTP, so no probes; basic-auth credentials are not needed there)."""
    spec = C.Spec(mlb)
    worker = spec.worker
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(worker.get("command") or DEFAULT_COMMAND),
        "env": C.runtime_env(spec, include_basic_auth=False),
        "volumeMounts": C.runtime_mounts(spec),
        "securityContext": C.container_security_context(),
    }
    if worker.get("args"):
        container["args"] = list(worker["args"])
    ef = C.env_from(spec)
    if ef:
        container["envFrom"] = ef
    res = C.resources(worker)
    if res:
        container["resources"] = res
    pod_spec: dict[str, Any] = {
        "securityContext": C.pod_security_context(),
        "containers": [container],
        "volumes": C.runtime_volumes(spec),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        **C.scheduling(worker),
    }
    if spec.raw.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = spec.raw["serviceAccountName"]
    pulls = C.image_pull_secrets(spec)
    if pulls:
        pod_spec["imagePullSecrets"] = pulls
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": C.object_meta(mlb, L.worker_name(spec.name), L.WORKER),
        "spec": {
            "replicas": int(worker.get("replicas", 1)),
            "selector": {"matchLabels": L.selector_labels(spec.name, L.WORKER)},
            "template": {
                "metadata": {"labels": L.labels(spec.name, L.WORKER), "annotations": {C.CONFIG_HASH_ANNOTATION: config_hash}},
                "spec": pod_spec,
            },
        },
    }
