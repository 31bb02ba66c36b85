"""The status a pass writes, computed from what the steps found: a pure function, no API access.

``build_status(old, spec, observed, ls_result, now=...)`` is KubeRay's ``calculateStatus``:
it reads the previous status, the spec, the observed children and the Label Studio step's
result, and returns the new status with the events its transitions deserve. It writes
nothing and posts nothing (``StatusWriter`` writes, the reconciler posts), so every
condition it can produce is unit-tested with plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..builders import Spec
from ..builders import labels as L
from ..builders.common import CONFIG_HASH_ANNOTATION
from ..status import (
    CHILDREN_OWNED,
    LABEL_STUDIO_REGISTERED,
    MONITORING_READY,
    READY,
    REDIS_READY,
    SERVER_AVAILABLE,
    WORKER_AVAILABLE,
    Check,
    deployment_check,
    foreign_check,
    ready_check,
    remove_condition,
    set_condition,
    statefulset_check,
)
from .events import NORMAL, WARNING, Event, flip_events
from .observed import LabelStudioResult, Observed

# Conditions a pod can explain, and the component label of those pods.
POD_COMPONENTS: dict[str, str] = {SERVER_AVAILABLE: L.SERVER, WORKER_AVAILABLE: L.WORKER, REDIS_READY: L.REDIS}
# Conditions present only while their part exists (the spec asks for it, or a conflict is there).
OPTIONAL_CONDITIONS = (WORKER_AVAILABLE, REDIS_READY, LABEL_STUDIO_REGISTERED, CHILDREN_OWNED, MONITORING_READY)


@dataclass(frozen=True)
class StatusResult:
    """The status to write (``None`` values are removed by the merge patch) and the events to post."""

    status: dict[str, Any]
    events: list[Event]


def _server(spec: Spec, observed: Observed) -> dict[str, Any] | None:
    return observed.live.get(("Deployment", spec.namespace, L.server_name(spec.name)))


def component_checks(spec: Spec, observed: Observed) -> dict[str, Check]:
    """ServerAvailable, WorkerAvailable and RedisReady from the children (those the spec has), in that order."""
    checks: dict[str, Check] = {SERVER_AVAILABLE: deployment_check(_server(spec, observed), "server")}
    if spec.worker_enabled:
        checks[WORKER_AVAILABLE] = deployment_check(
            observed.live.get(("Deployment", spec.namespace, L.worker_name(spec.name))), "worker"
        )
    if spec.redis_managed and observed.redis_auth_error:
        checks[REDIS_READY] = Check(False, "PasswordSecretUnavailable", observed.redis_auth_error)
    elif spec.redis_managed:
        checks[REDIS_READY] = statefulset_check(
            observed.live.get(("StatefulSet", spec.namespace, L.redis_name(spec.name)))
        )
    elif spec.redis is not None:
        ref = spec.redis["external"]["urlSecretRef"]
        checks[REDIS_READY] = Check(True, "External", f"external Redis, URL from Secret {ref['name']}")
    return checks


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _monitoring_events(prev: dict[str, Any] | None, check: Check) -> list[Event]:
    """A Warning when MonitoringReady first fails or fails for another reason (True -> False is flip_events'
    NotMonitoringReady), a Normal one when it recovers: one event per change, not one per retry."""
    if not check.ok and (prev is None or (prev.get("status") == "False" and prev.get("reason") != check.reason)):
        return [Event(WARNING, check.reason, check.message)]
    if check.ok and prev is not None and prev.get("status") == "False":
        return [Event(NORMAL, MONITORING_READY, check.message)]
    return []


def build_status(
    old: dict[str, Any], spec: Spec, observed: Observed, ls_result: LabelStudioResult, *, now: str
) -> StatusResult:
    """The new status (conditions with lastTransitionTime kept unless they flipped) and its events."""
    generation = spec.metadata.get("generation")
    checks = component_checks(spec, observed)
    checks.update(observed.explained)
    events: list[Event] = []
    if ls_result.check is not None:
        checks[LABEL_STUDIO_REGISTERED] = ls_result.check
    if observed.foreign:
        checks[CHILDREN_OWNED] = foreign_check(observed.foreign)
        prev = _condition(old, CHILDREN_OWNED)
        if prev is None or prev.get("message") != checks[CHILDREN_OWNED].message:
            events.append(Event(WARNING, "AdoptionRefused", checks[CHILDREN_OWNED].message))
    checks[READY] = ready_check(checks)
    if observed.monitoring is not None:  # after Ready: scraping is not serving
        checks[MONITORING_READY] = observed.monitoring
        events.extend(_monitoring_events(_condition(old, MONITORING_READY), observed.monitoring))

    conds: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or []]
    for ctype in OPTIONAL_CONDITIONS:
        if ctype not in checks:
            conds = remove_condition(conds, ctype)
    for ctype, check in checks.items():
        conds = set_condition(conds, ctype, check, generation, now)
    events.extend(flip_events(old.get("conditions") or [], conds))

    server = _server(spec, observed) or {}
    server_status = server.get("status") or {}
    template_annotations = ((server.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
        "annotations"
    ) or {}
    ls_status = ls_result.status
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conds,
        "url": spec.backend_url if spec.label_studio else spec.service_url,
        "replicas": int(server_status.get("replicas", 0)),
        "readyReplicas": int(server_status.get("readyReplicas", 0)),
        "selector": L.selector_string(spec.name, L.SERVER),
        "modelVersion": next(
            (b.get("modelVersion") for b in ls_status.get("backends") or [] if b.get("modelVersion")), ""
        ),
        "configHash": template_annotations.get(CONFIG_HASH_ANNOTATION, ""),
        "labelStudio": ls_status if ls_status else None,
    }
    return StatusResult(status, events)
