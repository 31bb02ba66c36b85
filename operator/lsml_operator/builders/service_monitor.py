"""ServiceMonitor (monitoring.coreos.com/v1, the Prometheus Operator's) for one MLBackend, only when
spec.monitoring.serviceMonitor.enabled.

It selects this backend's server Service (the only one with its instance and component ``server``) and
scrapes ``/metrics`` on the Service's ``http`` port. The worker serves no HTTP, so nothing of it is scraped:
fits report their duration through the server (the published version carries it). ``/metrics`` is behind
the backend's Basic auth when ``spec.basicAuth`` is set, so the endpoint names that same Secret by
reference (``basicAuth.username``/``password`` SecretKeySelectors, resolved by the Prometheus Operator in
this namespace): never a credential in the object. Every series gets an ``mlbackend`` label, as the chart's
cluster-wide monitor gives it.
"""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L

API_VERSION = "monitoring.coreos.com/v1"
KIND = "ServiceMonitor"
PORT_NAME = "http"  # the server Service's port name (builders/service.py)
METRICS_PATH = "/metrics"


def build(mlb: dict[str, Any]) -> dict[str, Any] | None:
    """The ServiceMonitor, or None when the spec does not ask for one."""
    spec = C.Spec(mlb)
    sm = spec.service_monitor_spec
    if not sm.enabled:
        return None
    meta = C.object_meta(mlb, L.service_monitor_name(spec.name), L.SERVER)
    meta["labels"] = {**(sm.labels or {}), **meta["labels"]}  # ours win: they say who manages the object
    endpoint: dict[str, Any] = {
        "port": PORT_NAME,
        "path": METRICS_PATH,
        "scheme": "http",
        "relabelings": [{"targetLabel": "mlbackend", "replacement": spec.name, "action": "replace"}],
    }
    if sm.interval:
        endpoint["interval"] = sm.interval
    if sm.scrape_timeout:
        endpoint["scrapeTimeout"] = sm.scrape_timeout
    auth = spec.raw.get("basicAuth")
    if auth:
        endpoint["basicAuth"] = {
            "username": {"name": auth["secretName"], "key": auth["usernameKey"]},
            "password": {"name": auth["secretName"], "key": auth["passwordKey"]},
        }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": L.selector_labels(spec.name, L.SERVER)},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [endpoint],
        },
    }
