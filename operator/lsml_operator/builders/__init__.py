"""Pure builders: MLBackend body -> one child object each, no I/O.

One module per child kind (as KubeRay's ``controllers/ray/common/``), so the whole
desired state is unit-tested without a cluster; the reconciler only applies what
``desired_children`` returns.
"""

from __future__ import annotations

from typing import Any

from . import hpa, network_policy, redis, server_deployment, service, service_monitor, storage, worker_deployment
from .common import Spec, config_hash

__all__ = ["desired_children", "Spec", "config_hash", "service_monitor"]


def desired_children(
    mlb: dict[str, Any], *, configmap_data: dict[str, str] | None = None, redis_auth_version: str = ""
) -> list[dict[str, Any]]:
    """Every child object the MLBackend should own, in apply order (storage and Redis before the pods that use them).

    ``configmap_data`` is the data of ``spec.model.configMapName`` and ``redis_auth_version`` the
    resourceVersion of the managed Redis' password Secret (both read by the reconciler), so that a
    change of either rolls the pods through the config-hash annotation. The password Secret itself
    is not here: it is random, so the reconciler creates it once (``redis.build_auth_secret``); nor is the
    ServiceMonitor (``service_monitor.build``), whose kind may not be served: the monitoring step applies it.
    """
    spec = Spec(mlb)
    digest = config_hash(mlb, configmap_data, redis_auth_version)
    children: list[dict[str, Any]] = []
    pvc = storage.build(mlb)
    if pvc is not None:
        children.append(pvc)
    if spec.redis_managed:
        children.append(redis.build_service(mlb))
        children.append(redis.build_statefulset(mlb, redis_auth_version))
        policy = network_policy.build(mlb)
        if policy is not None:
            children.append(policy)
    children.append(service.build(mlb))
    children.append(server_deployment.build(mlb, config_hash=digest))
    if spec.worker_enabled:
        children.append(worker_deployment.build(mlb, config_hash=digest))
    autoscaler = hpa.build(mlb)
    if autoscaler is not None:
        children.append(autoscaler)
    return children
