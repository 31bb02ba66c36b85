"""Managed Redis: a one-replica StatefulSet with AOF persistence on its own volume, plus its headless Service.

One replica on purpose: it is the training queue and the state store, not a cache, and
a StatefulSet gives it a stable name and a volume that survives pod restarts. The claim
from volumeClaimTemplates is retained when the StatefulSet goes (a StatefulSet deleted by hand
is recreated by the operator and finds its data again); the operator deletes the claim when
the MLBackend itself is deleted (``redis_claim_name``), since template claims carry no owner
reference to the MLBackend.
"""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L


def redis_claim_name(name: str) -> str:
    """The claim the StatefulSet's volumeClaimTemplate ``data`` makes for pod 0."""
    return f"data-{L.redis_name(name)}-0"


def build_service(mlb: dict[str, Any]) -> dict[str, Any]:
    """Headless Service: gives the pod its DNS name and is the StatefulSet's serviceName."""
    spec = C.Spec(mlb)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": C.object_meta(mlb, L.redis_name(spec.name), L.REDIS),
        "spec": {
            "clusterIP": "None",
            "selector": L.selector_labels(spec.name, L.REDIS),
            "ports": [{"name": "redis", "port": C.REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
            "publishNotReadyAddresses": True,
        },
    }


def build_statefulset(mlb: dict[str, Any]) -> dict[str, Any]:
    spec = C.Spec(mlb)
    redis = spec.redis or {}
    storage = redis.get("storage") or {}
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.get("size", C.DEFAULT_REDIS_SIZE)}},
    }
    if storage.get("storageClassName"):
        claim_spec["storageClassName"] = storage["storageClassName"]
    container: dict[str, Any] = {
        "name": "redis",
        "image": redis.get("image", C.DEFAULT_REDIS_IMAGE),
        "imagePullPolicy": spec.image_pull_policy,
        # AOF on, fsync every second: queued training jobs and state survive a restart.
        "command": ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data",
                    "--port", str(C.REDIS_PORT), "--protected-mode", "no"],
        "ports": [{"name": "redis", "containerPort": C.REDIS_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": C.container_security_context(),
        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5, "timeoutSeconds": 3},
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6},
    }
    res = C.resources(redis)
    if res:
        container["resources"] = res
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": C.object_meta(mlb, L.redis_name(spec.name), L.REDIS),
        "spec": {
            "replicas": 1,
            "serviceName": L.redis_name(spec.name),
            "selector": {"matchLabels": L.selector_labels(spec.name, L.REDIS)},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": L.labels(spec.name, L.REDIS)},
                "spec": {
                    "securityContext": C.pod_security_context(C.REDIS_UID),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,
                },
            },
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "labels": L.labels(spec.name, L.REDIS)},
                "spec": claim_spec,
            }],
        },
    }
