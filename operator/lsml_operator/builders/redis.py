"""Managed Redis: a one-replica StatefulSet with AOF persistence on its own volume, its headless Service
and its password Secret.

One replica on purpose: it is the training queue and the state store, not a cache, and
a StatefulSet gives it a stable name and a volume that survives pod restarts. The claim
from volumeClaimTemplates is retained when the StatefulSet goes (a StatefulSet deleted by hand
is recreated by the operator and finds its data again); the operator deletes the claim when
the MLBackend itself is deleted (``redis_claim_name``), since template claims carry no owner
reference to the MLBackend.

Access to this Redis is code execution in the worker (it runs the jobs it finds there), so it
requires a password: a random one the reconciler creates once in a Secret owned by the
MLBackend (``build_auth_secret``). Redis reads it from its environment through a config fed on
stdin, so it appears neither in the pod spec nor on redis-server's command line.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from ..crd.model import RedisSpec
from . import common as C
from . import labels as L


def redis_claim_name(name: str) -> str:
    """The claim the StatefulSet's volumeClaimTemplate ``data`` makes for pod 0."""
    return f"data-{L.redis_name(name)}-0"


AUTH_VERSION_ANNOTATION = "lsml.dev/redis-auth-version"

# `requirepass` goes in on stdin (`redis-server -` reads its config from there), never as an argument
# (visible in /proc/*/cmdline); the kubelet does not expand `$REDIS_PASSWORD` (only `$(NAME)`), sh does.
# An empty password makes `requirepass` a config error: Redis then refuses to start (fails closed).
START_SCRIPT = (
    "exec redis-server --appendonly yes --appendfsync everysec --dir /data --port {port} - <<EOF\n"
    "requirepass $REDIS_PASSWORD\n"
    "EOF\n"
)
# REDISCLI_AUTH (from the same Secret) authenticates redis-cli; grep makes an error reply (NOAUTH) a failure.
READINESS_SCRIPT = "redis-cli -p {port} ping | grep -qx PONG"


def new_password() -> str:
    """256 random bits, hex: safe inside a redis:// URL and a Redis config line without escaping."""
    return secrets.token_hex(32)


def build_auth_secret(mlb: dict[str, Any], password: str) -> dict[str, Any]:
    """The Redis password Secret. Created once by the reconciler (never re-applied, so never regenerated);
    its owner reference lets the garbage collector delete it with the MLBackend."""
    spec = C.Spec(mlb)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": C.object_meta(mlb, L.redis_auth_secret_name(spec.name), L.REDIS),
        "type": "Opaque",
        "data": {C.REDIS_PASSWORD_KEY: base64.b64encode(password.encode()).decode()},
    }


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


def build_statefulset(mlb: dict[str, Any], auth_version: str = "") -> dict[str, Any]:
    """``auth_version`` (the auth Secret's resourceVersion) goes on the pod template: a new password restarts Redis."""
    spec = C.Spec(mlb)
    redis = spec.redis_spec or RedisSpec()
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": redis.storage.size}},
    }
    if redis.storage.storage_class_name:
        claim_spec["storageClassName"] = redis.storage.storage_class_name
    container: dict[str, Any] = {
        "name": "redis",
        "image": redis.image,
        "imagePullPolicy": spec.image_pull_policy,
        # AOF on, fsync every second: queued training jobs and state survive a restart.
        "command": ["sh", "-c", START_SCRIPT.format(port=C.REDIS_PORT)],
        "env": [C.redis_password_env(spec), C.redis_password_env(spec, "REDISCLI_AUTH")],
        "ports": [{"name": "redis", "containerPort": C.REDIS_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": C.container_security_context(),
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", READINESS_SCRIPT.format(port=C.REDIS_PORT)]},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "redis"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
    }
    res = C.resources(spec.redis or {})
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
                "metadata": {
                    "labels": L.labels(spec.name, L.REDIS),
                    "annotations": {AUTH_VERSION_ANNOTATION: auth_version},
                },
                "spec": {
                    "securityContext": C.pod_security_context(C.REDIS_UID),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,
                },
            },
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "labels": L.labels(spec.name, L.REDIS)},
                    "spec": claim_spec,
                }
            ],
        },
    }
