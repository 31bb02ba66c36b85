"""Step 1b of a pass: the MLBackend's own ServiceMonitor (spec.monitoring.serviceMonitor), and what it found.

The ServiceMonitor kind belongs to the Prometheus Operator, whose CRDs may not be installed, and the chart
grants the operator RBAC on it only with ``monitoring.perMLBackend``. Neither is an error of the backend:
the pass goes on, the condition ``MonitoringReady`` (not part of ``Ready``) says what is missing, and the
attempt is retried on the timer with the operator's exponential backoff (``Trigger.RETRY``), so a missing
CRD costs one GET and one PATCH per backoff period, not a hot loop; once the CRD (or the RBAC) appears the
next attempt creates the object and the condition turns True. Without ``enabled`` the ServiceMonitor is
deleted (any pass that prunes asks the API when this process applied one or status shows the spec asked
for one), and one that is not this MLBackend's is never touched (``ForeignObject``, as for every child).
No watch follows ServiceMonitors: full passes read the live one and apply only a difference, so a restart
with nothing changed writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from ..builders import Spec, service_monitor
from ..builders import labels as L
from ..keys import ChildKey, Key, key_of
from ..kube import Forbidden, Invalid, Kube, NotFound, owned_by
from ..status import MONITORING_READY, Check
from .backoff import Backoff
from .child_cache import ChildCache
from .children import ChildrenStep
from .events import NORMAL, Event
from .observed import ForeignObject, Observed
from .trigger import Policy, Prune

APPLIED = "ServiceMonitorApplied"
UNAVAILABLE = "MonitoringUnavailable"  # the monitoring.coreos.com/v1 ServiceMonitor API is not served
FORBIDDEN = "MonitoringForbidden"  # RBAC: the chart's monitoring.perMLBackend is off
FOREIGN = "ForeignObject"
REFUSED = "ServiceMonitorRefused"  # the API server refused the object (422): a CRD stricter than lsml expects
MAX_MESSAGE = 300


def _refusal(exc: Invalid) -> str:
    """The API server's own words for a 422 (its Status message), bounded; it names fields, never values of ours
    that could be secret (the ServiceMonitor holds Secret names only)."""
    try:
        text = str(json.loads(exc.body).get("message") or exc.reason)
    except (ValueError, AttributeError):
        text = exc.reason
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def previous_check(old: dict[str, Any]) -> Check | None:
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == MONITORING_READY), None)
    return Check(prev.get("status") == "True", prev.get("reason", ""), prev.get("message", "")) if prev else None


class MonitoringStep:
    """Applies or deletes one MLBackend's ServiceMonitor; its backoff is the timer's (``tick_due``) to read."""

    def __init__(self, kube: Kube, cache: ChildCache, children: ChildrenStep, backoff: Backoff) -> None:
        self.kube = kube
        self.cache = cache
        self.children = children
        self.backoff = backoff

    def run(self, mlb: dict[str, Any], spec: Spec, policy: Policy, old: dict[str, Any], out: Observed) -> None:
        """Set ``out.monitoring`` (None: the spec asks for no ServiceMonitor) and add what was done to ``out``."""
        key = key_of(mlb)
        name = L.service_monitor_name(spec.name)
        ck: ChildKey = (service_monitor.KIND, spec.namespace, name)
        desired = service_monitor.build(mlb)
        prev = previous_check(old)
        if desired is None:
            self.backoff.forget(key)
            if self._may_exist(ck, policy.prune, prev):
                self._prune(ck, mlb["metadata"]["uid"], out.events)
            return
        if not policy.full and prev is not None and not prev.ok and not self.backoff.allowed(key):
            out.monitoring = prev  # waiting for the timer's retry: no request on every child event meanwhile
            return
        try:
            if policy.full:
                # no watch follows ServiceMonitors (the kind may not be served): full passes read the live one
                # (a read, not a write: a restart with nothing changed writes nothing) and apply only a difference
                self._refresh(key, ck, mlb["metadata"]["uid"])
            self.children.ensure(key, desired, force=False)
        except ForeignObject as exc:
            out.foreign.append(exc)
            self.backoff.failed(key)
            out.monitoring = Check(False, FOREIGN, f"ServiceMonitor {spec.namespace}/{name} is not this MLBackend's")
            return
        except NotFound:
            self.backoff.failed(key)
            out.monitoring = Check(
                False,
                UNAVAILABLE,
                "the cluster does not serve ServiceMonitors (monitoring.coreos.com/v1): install the Prometheus "
                "Operator's CRDs (e.g. kube-prometheus-stack); retried with backoff, created when they appear",
            )
            return
        except Invalid as exc:
            self.backoff.failed(key)
            out.monitoring = Check(False, REFUSED, f"the API server refused the ServiceMonitor: {_refusal(exc)}")
            return
        except Forbidden:
            self.backoff.failed(key)
            out.monitoring = Check(
                False,
                FORBIDDEN,
                f"the operator may not manage ServiceMonitors in {spec.namespace} (RBAC: chart value "
                "monitoring.perMLBackend); retried with backoff",
            )
            return
        self.backoff.succeeded(key)
        out.monitoring = Check(
            True,
            APPLIED,
            f"ServiceMonitor {name} scrapes {service_monitor.METRICS_PATH} on port {service_monitor.PORT_NAME} of "
            f"Service {L.service_name(spec.name)}",
        )

    def _refresh(self, key: Key, ck: ChildKey, uid: str) -> None:
        """Record the live ServiceMonitor when it is this MLBackend's (else ``ensure`` finds out whose it is)."""
        live = self.kube.get(*ck)
        if live is None:
            self.cache.drop(ck)
        elif owned_by(live, uid):
            self.cache.saw(key, ck, live)

    def _may_exist(self, ck: ChildKey, prune: Prune, prev: Check | None) -> bool:
        """Whether to look for a ServiceMonitor to delete: this process applied one, or the last status says the
        spec asked for one (no watch follows ServiceMonitors: after a restart, status is what says so). A backend that never asked
        costs no request, and an operator without the RBAC makes no refused call on every update."""
        if prune is Prune.NONE:
            return False
        return self.cache.observed(ck) is not None or prev is not None

    def _prune(self, ck: ChildKey, uid: str, events: list[Event]) -> None:
        """Delete the ServiceMonitor the spec no longer asks for, if it is this MLBackend's.

        Without the CRD the GET answers 404 (nothing to delete); without the RBAC it answers 403, and an
        operator that may not touch ServiceMonitors made none.
        """
        try:
            deleted = self.kube.delete_owned(*ck, uid)
        except Forbidden:
            deleted = False
        if deleted:
            events.append(Event(NORMAL, "ChildDeleted", f"deleted ServiceMonitor {ck[2]}: no longer in the spec"))
        self.cache.drop(ck)
