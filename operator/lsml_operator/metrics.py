"""The operator's Prometheus metrics, served by ``lsml-operator --metrics-port`` (the chart scrapes them).

Labels carry triggers, results and CamelCase reasons only: never an object's name, a URL or a message, so the
endpoint (unauthenticated, like kopf's liveness) tells nothing about what runs in the cluster but counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter(
    "lsml_operator_reconciles",
    "Reconcile passes by trigger (create, update, resync, retry, child event, ...) and result (ok, error)",
    ["trigger", "result"],
)
RECONCILE_SECONDS = Histogram(
    "lsml_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass (children, pods, Label Studio, status)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REGISTRATION_FAILURES = Counter(
    "lsml_operator_registration_failures",
    "Label Studio registration attempts that failed, by reason (LabelStudioUnreachable, LabelStudioRefused)",
    ["reason"],
)


class ReadyByReason(Collector):
    """``lsml_operator_mlbackends{ready, reason}``: how many MLBackends are Ready, and why the others are not.

    Counted at scrape time from the Ready condition each pass wrote last (a deleted MLBackend is forgotten),
    so the gauge is exact whichever replica or restart wrote the status before.
    """

    # the attributes prometheus-client's own metrics carry: the docs' metrics reference reads them
    _name = "lsml_operator_mlbackends"
    _documentation = "MLBackends this operator reconciled, by their Ready condition's status and reason"
    _labelnames = ("ready", "reason")
    _type = "gauge"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[Any, tuple[str, str]] = {}

    def record(self, key: Any, status: dict[str, Any]) -> None:
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        with self._lock:
            if ready is None:
                self._ready.pop(key, None)
            else:
                self._ready[key] = (str(ready.get("status", "Unknown")), str(ready.get("reason", "")))

    def forget(self, key: Any) -> None:
        with self._lock:
            self._ready.pop(key, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=list(self._labelnames))
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for value in self._ready.values():
                counts[value] = counts.get(value, 0) + 1
        for (ready, reason), n in sorted(counts.items()):
            family.add_metric([ready, reason], n)
        yield family


READY_BY_REASON = ReadyByReason()
REGISTRY.register(READY_BY_REASON)
