"""MLBackend status: conditions in the standard Kubernetes shape, computed from the children.

Pure functions of (old status, observed children, registration outcome). lastTransitionTime
moves only when a condition's status flips, so ``kubectl wait`` and dashboards see real
transitions and an unchanged status patch is a no-op (no write, no watch event, no hot loop).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

SERVER_AVAILABLE = "ServerAvailable"
WORKER_AVAILABLE = "WorkerAvailable"
REDIS_READY = "RedisReady"
LABEL_STUDIO_REGISTERED = "LabelStudioRegistered"
CHILDREN_OWNED = "ChildrenOwned"  # present (False) only while a child's name is taken by a foreign object
# present only with spec.monitoring.serviceMonitor.enabled, and not part of Ready: a backend that serves is
# ready whether or not Prometheus can be told to scrape it
MONITORING_READY = "MonitoringReady"
READY = "Ready"
CONDITION_ORDER = [
    READY,
    SERVER_AVAILABLE,
    WORKER_AVAILABLE,
    REDIS_READY,
    LABEL_STUDIO_REGISTERED,
    CHILDREN_OWNED,
    MONITORING_READY,
]


@dataclass(frozen=True)
class Check:
    """One observed fact: status True/False, with a CamelCase reason and a human message."""

    ok: bool
    reason: str
    message: str


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: list[dict[str, Any]], ctype: str, check: Check, generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Return conditions with ``ctype`` set; keeps lastTransitionTime unless the status flipped."""
    status = "True" if check.ok else "False"
    old = next((c for c in conditions if c.get("type") == ctype), None)
    ltt = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    new = {"type": ctype, "status": status, "reason": check.reason, "message": check.message, "lastTransitionTime": ltt}
    if generation is not None:
        new["observedGeneration"] = generation
    out = [c for c in conditions if c.get("type") != ctype] + [new]
    return sorted(out, key=lambda c: CONDITION_ORDER.index(c["type"]) if c["type"] in CONDITION_ORDER else 99)


def remove_condition(conditions: list[dict[str, Any]], ctype: str) -> list[dict[str, Any]]:
    return [c for c in conditions if c.get("type") != ctype]


def deployment_check(dep: dict[str, Any] | None, what: str) -> Check:
    """Available = the controller saw the current generation, every replica is updated and available."""
    if not dep:
        return Check(False, "NotFound", f"{what} Deployment does not exist yet")
    meta, spec, st = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    if int(st.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return Check(False, "RolloutPending", f"{what} Deployment generation {meta.get('generation')} not observed yet")
    updated, available = int(st.get("updatedReplicas", 0)), int(st.get("availableReplicas", 0))
    total = int(st.get("replicas", 0))
    if updated < want or total > want:
        return Check(False, "RollingOut", f"{what}: {updated}/{want} replicas updated")
    if available < want:
        return Check(False, "ReplicasUnavailable", f"{what}: {available}/{want} replicas available")
    return Check(True, "Available", f"{what}: {available}/{want} replicas available")


def statefulset_check(sts: dict[str, Any] | None) -> Check:
    if not sts:
        return Check(False, "NotFound", "Redis StatefulSet does not exist yet")
    meta, spec, st = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    want = int(spec.get("replicas", 1))
    if int(st.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return Check(False, "RolloutPending", "Redis StatefulSet generation not observed yet")
    ready = int(st.get("readyReplicas", 0))
    if ready < want:
        return Check(False, "NotReady", f"Redis: {ready}/{want} replicas ready")
    return Check(True, "Ready", f"Redis: {ready}/{want} replicas ready")


def foreign_check(objects: list[Any]) -> Check:
    """ChildrenOwned=False naming every object the operator refused to adopt (each has kind/namespace/name/stale)."""
    names = ", ".join(
        f"{o.kind} {o.namespace}/{o.name}"
        + (" (left by a deleted MLBackend of this name: the garbage collector removes it)" if o.stale else "")
        for o in objects
    )
    return Check(
        False,
        "ForeignObject",
        f"not adopted, left untouched: {names} already exist(s) without this "
        "MLBackend's owner reference; delete or rename it, or rename the MLBackend",
    )


def ready_check(checks: dict[str, Check]) -> Check:
    """Ready is the AND of every applicable condition; the message names what is not ready and the
    reason is the first failing one's (``kubectl get mlb`` shows it: ImagePullFailed says more than NotReady)."""
    failing = [(t, c) for t, c in checks.items() if not c.ok]
    if failing:
        return Check(False, failing[0][1].reason, "; ".join(f"{t}: {c.message}" for t, c in failing))
    return Check(True, "Ready", "all components are ready")


def strip_volatile(status: dict[str, Any]) -> dict[str, Any]:
    """Status without timestamps, to decide whether a write is needed."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
    ]
    return out
