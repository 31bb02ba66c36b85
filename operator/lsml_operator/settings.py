"""Operator settings, read once from the environment (and overridden by command-line flags in main)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any


def _setting(default: Any, env: str, doc: str, *, read: Callable[[str | None], Any] | None = None) -> Any:
    """A field that names its environment variable and says what it does (read by the docs generator).

    `from_env` reads every field from this declaration (`read` parses the raw value; numbers and strings by the
    default's type), so a variable's name and default are written once.
    """
    return field(default=default, metadata={"env": env, "doc": doc, "shown": None, "read": read})


def _read(declared: Field) -> Any:
    """One `_setting(...)` field's value from the environment, or its default."""
    raw = os.environ.get(declared.metadata["env"]) or None
    read = declared.metadata["read"]
    if read is not None:
        return read(raw)
    if raw is None:
        return declared.default
    if isinstance(declared.default, int):  # a count: "10" or "10.0"
        return int(float(raw))
    if isinstance(declared.default, float):
        return float(raw)
    return raw


def _url_map(raw: str | None) -> dict[str, str] | None:
    """``LSML_OPERATOR_BACKEND_URLS`` parsed; a value that is not a JSON object of strings stops the operator."""
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError('LSML_OPERATOR_BACKEND_URLS must be a JSON object {"<namespace>/<name>": "<base URL>"}')
    return value


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
    audit_seconds: float = _setting(
        1800.0,
        "LSML_OPERATOR_AUDIT_SECONDS",
        "how often the first resync in a namespace lists the names of the children there (one LIST per watched kind, "
        "metadata only) to find any deleted while a watch was re-listing, which no watch event reports: such a "
        "child is applied again at once. The longest such a deletion can go unseen; 0 turns it off",
    )
    timer_seconds: float = _setting(
        10.0,
        "LSML_OPERATOR_TIMER_SECONDS",
        "how often the timer wakes up to retry a failed registration (cheap when nothing is due); the timer also "
        "starts the quality polls, so it wakes up at least every `LSML_OPERATOR_QUALITY_SECONDS`",
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
        "`status.served`, the SCORE column and `CandidateHeld` events (on the timer's tick: rounded to the nearest multiple "
        "of the shorter of this and `LSML_OPERATOR_TIMER_SECONDS`); 0 turns it off",
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
        read=_url_map,
    )
    peering_name: str = _setting(
        "lsml-operator", "LSML_OPERATOR_PEERING_NAME", "the kopf peering object (`--peering-name` overrides it)"
    )

    def timer_interval(self) -> float:
        """The period of the one kopf timer per MLBackend: the reconcile's tick, or the quality poll's when shorter."""
        if self.quality_seconds > 0:
            return min(self.timer_seconds, self.quality_seconds)
        return self.timer_seconds

    def timer_first_delay(self) -> float:
        """The timer's first wake-up after an MLBackend appears: the first quality poll comes within 5 s."""
        if self.quality_seconds > 0:
            return min(self.timer_interval(), 5.0)
        return self.timer_seconds

    @classmethod
    def from_env(cls) -> OperatorSettings:
        return cls(**{declared.name: _read(declared) for declared in fields(cls)})

    def backend_url(self, namespace: str, name: str, service_url: str) -> str:
        """Where the operator reaches one backend's API: its ``LSML_OPERATOR_BACKEND_URLS`` entry, else its Service."""
        return ((self.backend_urls or {}).get(f"{namespace}/{name}") or service_url).rstrip("/")
