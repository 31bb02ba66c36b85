"""Stable names and the app.kubernetes.io/* labels of every child.

Names derive only from the MLBackend's name, never from its spec, so a spec change
updates children in place instead of orphaning them; the CRD limits the name to 40
characters so ``<name>-redis-0`` and friends stay valid DNS labels.
"""

from __future__ import annotations

from .. import FIELD_MANAGER

APP_NAME = "lsml"
PART_OF = "lsml"
MANAGED_BY = FIELD_MANAGER

SERVER = "server"
WORKER = "worker"
REDIS = "redis"
MODELS = "models"


def server_name(name: str) -> str:
    """Deployment of the HTTP server (also the HPA's name)."""
    return f"{name}-server"


def service_name(name: str) -> str:
    """The Service keeps the MLBackend's own name: the URL people see is http://<name>.<ns>.svc:<port>."""
    return name


def worker_name(name: str) -> str:
    return f"{name}-worker"


def redis_name(name: str) -> str:
    """StatefulSet and its headless Service share this name (pods resolve as <name>-redis-0.<name>-redis)."""
    return f"{name}-redis"


def redis_auth_secret_name(name: str) -> str:
    """The Secret holding the managed Redis' password (generated once by the operator, key ``password``)."""
    return f"{name}-redis-auth"


def network_policy_name(name: str) -> str:
    """The NetworkPolicy guarding the managed Redis (a different kind, so it shares the Redis name)."""
    return redis_name(name)


def models_claim_name(name: str) -> str:
    return f"{name}-models"


def hpa_name(name: str) -> str:
    return server_name(name)


def service_monitor_name(name: str) -> str:
    """The ServiceMonitor (monitoring.coreos.com) scraping the server: named like the Service it selects."""
    return name


def selector_labels(name: str, component: str) -> dict[str, str]:
    """The immutable subset used in Deployment/StatefulSet selectors and Service selectors."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
    }


def labels(name: str, component: str) -> dict[str, str]:
    """Full label set: selector labels plus managed-by/part-of (what the operator's child watches filter on)."""
    return {
        **selector_labels(name, component),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
    }


def selector_string(name: str, component: str = SERVER) -> str:
    """Label selector in string form, for status.selector (the scale subresource's labelSelectorPath)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name, component).items())


def instance_selector(name: str) -> str:
    """Every object of one MLBackend that the operator labels: its pods of all components, its claims."""
    return (
        f"app.kubernetes.io/name={APP_NAME},app.kubernetes.io/instance={name},app.kubernetes.io/managed-by={MANAGED_BY}"
    )
