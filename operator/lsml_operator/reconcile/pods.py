"""Step 2 of a pass: why unavailable components are unavailable, read from their pods.

Costs nothing at steady state: only when a component is unavailable, one LIST of the
MLBackend's pods (all components share the instance label), plus one LIST of its claims
when a pod waits for one. The cause itself comes from the pure ``pod_diagnosis``. A refusal
(e.g. a chart older than this RBAC) keeps the plain replica count: a status without the
cause beats no status.
"""

from __future__ import annotations

import logging
import threading

from .. import pod_diagnosis
from ..builders import Spec
from ..builders import labels as L
from ..keys import Key
from ..kube import APIError, Kube
from ..status import Check
from .build_status import POD_COMPONENTS

log = logging.getLogger("lsml_operator")


class PodsStep:
    """Reads pods only when a condition needs explaining; remembers where it may not, to warn once, and the
    causes it found, so that the passes between two diagnoses (child events) keep them without a LIST."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._guard = threading.Lock()
        self._refused: set[str] = set()  # namespaces where listing pods was refused (logged once)
        # key -> {condition type: (its reason before explaining, the pods' cause or None)}
        self._causes: dict[Key, dict[str, tuple[str, pod_diagnosis.Cause | None]]] = {}

    def forget(self, key: Key) -> None:
        with self._guard:
            self._causes.pop(key, None)

    def explain(self, spec: Spec, checks: dict[str, Check], *, fresh: bool = True) -> dict[str, Check]:
        """The component checks worth explaining, with their pods' cause added (empty when none is).

        ``fresh`` False (a child event's pass, the re-run it asks for, a RETRY): no read. The causes the last read
        found are reused while each condition's plain reason is the same; a condition newly failing keeps its plain
        reason (replicas available), and its new reason makes the timer's next tick a DIAGNOSE pass that reads the
        pods (``Reconciler.tick_due``). During a ramp of a thousand backends every rollout event moves a condition,
        and a LIST for each cost more API server time than the applies themselves: a LIST by label scans the
        namespace's pods."""
        key = (spec.namespace, spec.name)
        failing = [t for t in POD_COMPONENTS if t in checks and pod_diagnosis.worth_diagnosing(checks[t])]
        with self._guard:
            known = {t: v for t, v in self._causes.get(key, {}).items() if t in failing}
            if known:
                self._causes[key] = known
            else:
                self._causes.pop(key, None)
        if not failing:
            return {}
        if not fresh:
            return {
                t: pod_diagnosis.explain(checks[t], known[t][1])
                for t in failing
                if t in known and known[t][0] == checks[t].reason
            }
        selector = L.instance_selector(spec.name)
        try:
            pods = self.kube.list("Pod", spec.namespace, selector)
            claims = {}
            if pod_diagnosis.needs_claims(pods):
                claims = {
                    c["metadata"]["name"]: c for c in self.kube.list("PersistentVolumeClaim", spec.namespace, selector)
                }
        except APIError as exc:
            # once per namespace at WARNING: the timer retries every few seconds while a component is down
            with self._guard:
                level = logging.DEBUG if spec.namespace in self._refused else logging.WARNING
                self._refused.add(spec.namespace)
            log.log(
                level,
                "%s/%s: cannot list pods or claims to explain %s (%s %s)",
                spec.namespace,
                spec.name,
                ", ".join(failing),
                exc.status,
                exc.reason,
            )
            return {}
        causes = {
            t: pod_diagnosis.diagnose(pod_diagnosis.by_component(pods, POD_COMPONENTS[t]), claims) for t in failing
        }
        with self._guard:
            self._causes[key] = {t: (checks[t].reason, cause) for t, cause in causes.items()}
        return {t: pod_diagnosis.explain(checks[t], cause) for t, cause in causes.items()}
