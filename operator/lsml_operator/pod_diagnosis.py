"""Why a component is not available, read from its pods: pure functions of pod and claim objects.

A Deployment's status only counts replicas ("0/1 available"); the cause sits in the pods
(a container waiting on an image pull or a crash back-off, a pod the scheduler cannot place,
a claim no volume binds to). The reconciler lists the pods of an MLBackend only while a
component is unavailable and hands them here; this module never calls the API, so every
cause can be unit-tested with the objects a real cluster returns.

What may reach a condition message: names (pod, container, claim, storage class), the image
reference, kubelet's and the scheduler's own reason and message, exit reason and code. Never
env values (not read at all) nor a container's termination message (the application writes
that file and may put anything in it). Messages are bounded (``MAX_MESSAGE``) and URL
credentials (``scheme://user:pass@``) are masked should a pull error echo one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .status import Check

MAX_MESSAGE = 300
COMPONENT_LABEL = "app.kubernetes.io/component"

IMAGE_PULL_FAILED = "ImagePullFailed"
CRASH_LOOP = "CrashLoopBackOff"
CONTAINER_CONFIG = "ContainerConfigError"
CLAIM_UNBOUND = "ClaimUnbound"
UNSCHEDULABLE = "Unschedulable"
POD_FAILED = "PodFailed"
# most telling first: when several pods show causes, the condition names the first of these
PRIORITY = [IMAGE_PULL_FAILED, CRASH_LOOP, CONTAINER_CONFIG, CLAIM_UNBOUND, UNSCHEDULABLE, POD_FAILED]

_IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
_CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# conditions whose cause is worth looking for: absent or not-yet-observed children explain themselves
_UNEXPLAINED = {"NotFound", "RolloutPending"}
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass(frozen=True)
class Cause:
    """Why one pod is not serving: a CamelCase reason for the condition and a one-line message."""

    reason: str
    message: str


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line, URL credentials masked, at most ``limit`` characters (an API message can be kilobytes)."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _container_cause(pod_name: str, cs: dict[str, Any]) -> Cause | None:
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    name = cs.get("name", "?")
    if reason in _IMAGE_PULL_REASONS:
        detail = waiting.get("message") or reason
        return Cause(
            IMAGE_PULL_FAILED,
            f"pod {pod_name}: container {name} cannot pull image {cs.get('image', '?')}: {reason}: {detail}",
        )
    last = (cs.get("lastState") or {}).get("terminated") or {}
    restarts = int(cs.get("restartCount") or 0)
    crashed = bool(last) and (last.get("exitCode") or 0) != 0
    if reason == CRASH_LOOP or (crashed and restarts and not cs.get("ready") and state.get("running") is not None):
        exit_text = f"{last.get('reason') or 'exited'} (exit code {last.get('exitCode', '?')})" if last else "unknown"
        return Cause(
            CRASH_LOOP, f"pod {pod_name}: container {name} keeps crashing ({restarts} restarts), last exit: {exit_text}"
        )
    if reason in _CONFIG_REASONS:
        return Cause(
            CONTAINER_CONFIG, f"pod {pod_name}: container {name}: {reason}: {waiting.get('message') or reason}"
        )
    return None


def _claim_text(claim_name: str, claims: Mapping[str, dict[str, Any]]) -> str | None:
    """'<claim> is Pending (storageClassName "x")' for a known claim that is not Bound, else None."""
    claim = claims.get(claim_name)
    if claim is None:  # not one of ours (a user's existing claim) or really absent: the scheduler's message says
        return None
    phase = (claim.get("status") or {}).get("phase") or "Pending"
    if phase == "Bound":
        return None
    sc = (claim.get("spec") or {}).get("storageClassName")
    where = f'storageClassName "{sc}"' if sc else "no storageClassName and no default StorageClass took it"
    return f"PersistentVolumeClaim {claim_name} is {phase} ({where})"


def claim_names(pod: dict[str, Any]) -> list[str]:
    """The claims a pod mounts (StatefulSet template claims appear here under their real names)."""
    vols = (pod.get("spec") or {}).get("volumes") or []
    return [
        v["persistentVolumeClaim"]["claimName"] for v in vols if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def _schedule_cause(pod_name: str, pod: dict[str, Any], claims: Mapping[str, dict[str, Any]]) -> Cause | None:
    cond = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    message = cond.get("message") or "no node fits"
    if "persistentvolumeclaim" in message.lower():
        unbound = [t for t in (_claim_text(n, claims) for n in claim_names(pod)) if t]
        if unbound:
            return Cause(CLAIM_UNBOUND, f"pod {pod_name} waits for storage: {'; '.join(unbound)}")
        return Cause(CLAIM_UNBOUND, f"pod {pod_name}: {message}")
    return Cause(UNSCHEDULABLE, f"pod {pod_name} cannot be scheduled: {message}")


def pod_cause(pod: dict[str, Any], claims: Mapping[str, dict[str, Any]] | None = None) -> Cause | None:
    """The most telling cause one pod shows, or None (running, starting normally, or being deleted)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return None
    name = meta.get("name", "?")
    found: list[Cause] = []
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        cause = _container_cause(name, cs)
        if cause:
            found.append(cause)
    sched = _schedule_cause(name, pod, claims or {})
    if sched:
        found.append(sched)
    if status.get("phase") == "Failed":
        found.append(
            Cause(
                POD_FAILED,
                f"pod {name} failed: {status.get('reason') or 'Failed'}: {status.get('message') or ''}".rstrip(": "),
            )
        )
    return min(found, key=lambda c: PRIORITY.index(c.reason)) if found else None


def diagnose(pods: Iterable[dict[str, Any]], claims: Mapping[str, dict[str, Any]] | None = None) -> Cause | None:
    """The cause to report for one component's pods: the most telling one, with how many pods show a cause.

    ``claims`` maps claim name -> PersistentVolumeClaim object (phase and storageClassName are read).
    """
    causes = [c for c in (pod_cause(p, claims) for p in pods) if c]
    if not causes:
        return None
    worst = min(causes, key=lambda c: PRIORITY.index(c.reason))
    more = f" ({len(causes)} pods affected)" if len(causes) > 1 else ""
    return Cause(worst.reason, bounded(worst.message, MAX_MESSAGE - len(more)) + more)


def by_component(pods: Iterable[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    """The pods of one component (server, worker, redis) out of one MLBackend's pod list."""
    return [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL) == component]


def needs_claims(pods: Iterable[dict[str, Any]]) -> bool:
    """Whether any pod waits on a claim: only then are the claims worth a request."""
    return any(
        "persistentvolumeclaim" in (c.get("message") or "").lower()
        for p in pods
        for c in (p.get("status") or {}).get("conditions") or []
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    )


def worth_diagnosing(check: Check) -> bool:
    """A failing condition whose cause may sit in the pods (a child that does not exist yet explains itself)."""
    return not check.ok and check.reason not in _UNEXPLAINED


def explain(check: Check, cause: Cause | None) -> Check:
    """The condition with the pods' cause as its reason and appended to its message (unchanged without one)."""
    if cause is None or not worth_diagnosing(check):
        return check
    return Check(False, cause.reason, f"{check.message}: {cause.message}")
