"""Operator settings, read once from the environment (and overridden by command-line flags in main)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _setting(default: Any, env: str, doc: str) -> Any:
    """A field that names its environment variable and says what it does (read by the docs generator)."""
    return field(default=default, metadata={"env": env, "doc": doc, "shown": None})


# Read by main.py, not by OperatorSettings: named here for the docs (variable -> (default, description)).
OTHER_VARIABLES: dict[str, tuple[str, str]] = {
    "LSML_OPERATOR_NAMESPACES": (
        "unset (every namespace)",
        "comma-separated namespaces to watch when neither `--namespace` nor `--all-namespaces` is given",
    ),
    "LSML_OPERATOR_LIVENESS": ("`http://0.0.0.0:8080/healthz`", "kopf's liveness endpoint (`--liveness` overrides it)"),
    "MALLOC_ARENA_MAX": (
        "unset (the operator caps glibc's malloc arenas at 2)",
        "glibc's own variable: when set, the operator leaves the arena count to it (`lsml_operator/memory.py`)",
    ),
    "LSML_OPERATOR_METRICS_PORT": (
        "`0` (off; the chart sets 8081)",
        "port of the operator's Prometheus metrics at `/metrics` (`--metrics-port` overrides it)",
    ),
}


@dataclass(frozen=True)
class OperatorSettings:
    """Knobs with defaults sized for a few hundred MLBackends per operator.

    Each field names its environment variable and says what it does (its ``metadata``): the docs' environment
    reference is generated from it (hack/docs/reference.py) and tests/docs/test_reference.py fails on a field
    without one.
    """

    resync_seconds: float = _setting(
        300.0,
        "LSML_OPERATOR_RESYNC_SECONDS",
        "how often every MLBackend gets a full pass even when nothing happened: its children compared with the "
        "spec (from the watches: applied only where they differ), its Redis password Secret re-read, its Label "
        "Studio registration re-verified (and `status.modelVersion` re-read), the quality poll's Basic "
        "credentials re-read: a safety net, watches do the real work",
    )
    timer_seconds: float = _setting(
        10.0,
        "LSML_OPERATOR_TIMER_SECONDS",
        "how often the timer wakes up to retry a failed registration (cheap when nothing is due)",
    )
    retry_base_seconds: float = _setting(
        5.0, "LSML_OPERATOR_RETRY_BASE_SECONDS", "first delay of the exponential backoff of Label Studio retries"
    )
    retry_max_seconds: float = _setting(
        300.0, "LSML_OPERATOR_RETRY_MAX_SECONDS", "longest delay of the exponential backoff of Label Studio retries"
    )
    label_studio_timeout: float = _setting(
        30.0, "LSML_OPERATOR_LABEL_STUDIO_TIMEOUT", "seconds one request to Label Studio may take"
    )
    delete_retries: int = _setting(
        10,
        "LSML_OPERATOR_DELETE_RETRIES",
        "attempts to deregister from Label Studio before a deleted MLBackend is let go anyway (with a Warning "
        "`DeregistrationFailed` naming what may remain)",
    )
    max_workers: int = _setting(16, "LSML_OPERATOR_MAX_WORKERS", "MLBackends reconciled at once (kopf's workers)")
    quality_seconds: float = _setting(
        30.0,
        "LSML_OPERATOR_QUALITY_SECONDS",
        "how often the operator asks each backend whose server Deployment is available which version each project "
        "serves and its held-out scores (`GET /versions`, with the backend's Basic credentials) for "
        "`status.served`, the SCORE column and `CandidateHeld` events; 0 turns it off",
    )
    quality_workers: int = _setting(
        4,
        "LSML_OPERATOR_QUALITY_WORKERS",
        "threads of the quality poll, apart from the reconciles' (`LSML_OPERATOR_MAX_WORKERS`): backends that do not "
        "answer (each poll waits up to `LSML_OPERATOR_BACKEND_TIMEOUT`) slow the poll down, never a reconcile",
    )
    backend_timeout: float = _setting(
        5.0, "LSML_OPERATOR_BACKEND_TIMEOUT", "seconds one request to a backend's own API (`/versions`) may take"
    )
    backend_urls: dict[str, str] | None = _setting(
        None,
        "LSML_OPERATOR_BACKEND_URLS",
        'JSON object `{"<namespace>/<name>": "<base URL>"}`: where the operator reaches those backends\' API '
        "instead of their Service (`http://<name>.<namespace>.svc:<port>`); for an operator running outside the "
        "cluster, where Service names do not resolve (the operator tests use it); set by the operator's admin only",
    )
    peering_name: str = _setting(
        "lsml-operator", "LSML_OPERATOR_PEERING_NAME", "the kopf peering object (`--peering-name` overrides it)"
    )

    @classmethod
    def from_env(cls) -> OperatorSettings:
        return cls(
            resync_seconds=_float("LSML_OPERATOR_RESYNC_SECONDS", cls.resync_seconds),
            timer_seconds=_float("LSML_OPERATOR_TIMER_SECONDS", cls.timer_seconds),
            retry_base_seconds=_float("LSML_OPERATOR_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_seconds=_float("LSML_OPERATOR_RETRY_MAX_SECONDS", cls.retry_max_seconds),
            label_studio_timeout=_float("LSML_OPERATOR_LABEL_STUDIO_TIMEOUT", cls.label_studio_timeout),
            delete_retries=int(_float("LSML_OPERATOR_DELETE_RETRIES", cls.delete_retries)),
            max_workers=int(_float("LSML_OPERATOR_MAX_WORKERS", cls.max_workers)),
            peering_name=os.environ.get("LSML_OPERATOR_PEERING_NAME", cls.peering_name),
            quality_seconds=_float("LSML_OPERATOR_QUALITY_SECONDS", cls.quality_seconds),
            quality_workers=int(_float("LSML_OPERATOR_QUALITY_WORKERS", cls.quality_workers)),
            backend_timeout=_float("LSML_OPERATOR_BACKEND_TIMEOUT", cls.backend_timeout),
            backend_urls=_url_map(os.environ.get("LSML_OPERATOR_BACKEND_URLS")),
        )

    def backend_url(self, namespace: str, name: str, service_url: str) -> str:
        """Where the operator reaches one backend's API: its ``LSML_OPERATOR_BACKEND_URLS`` entry, else its Service."""
        return ((self.backend_urls or {}).get(f"{namespace}/{name}") or service_url).rstrip("/")


def _url_map(raw: str | None) -> dict[str, str] | None:
    """``LSML_OPERATOR_BACKEND_URLS`` parsed; a value that is not a JSON object of strings stops the operator."""
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError('LSML_OPERATOR_BACKEND_URLS must be a JSON object {"<namespace>/<name>": "<base URL>"}')
    return value
