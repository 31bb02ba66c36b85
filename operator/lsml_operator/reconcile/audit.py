"""The audit: now and then, one labelled LIST per watched child kind and namespace, for deletions no watch reported.

Why: kopf lists a resource again when its watch cannot resume (``410 Gone``: the API server restarted, or the
watch fell behind etcd's compaction), and a re-list shows the objects that exist, never those deleted in
between. The child cache would keep such a child, with the fingerprint of our last apply, as present: no pass
would apply it again, and status would report it as it last was, until the operator restarted. A kopf re-list
gives handlers no sign of itself (and a kind whose only children were deleted lists nothing at all), so the
audit does not wait for one: every ``LSML_OPERATOR_AUDIT_SECONDS`` per namespace, the first resync of an
MLBackend there lists the names (metadata only, paginated) of each kind the cache holds there.

Correct whatever the order of events: a child is dropped only when the LIST, sent after the audit's mark, did
not name it and nothing (a watch event, a read, an apply's answer) showed it to exist after that mark
(``ChildCache.vanished``). Dropped, it is read and applied again by its MLBackend's next pass, which the audit
makes a full one at the timer's next tick. A LIST that fails is logged and tried again a period later.

Cost: at most one LIST per watched kind per namespace per period (six with every optional child), against the
resync's one request per MLBackend per resync period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..builders.labels import MANAGED_BY
from ..keys import Key
from ..kube import Kube
from .child_cache import ChildCache

log = logging.getLogger("lsml_operator")

#: The child kinds the operator's watches follow (``main.CHILD_RESOURCES`` watches exactly these).
WATCHED_KINDS = (
    "Deployment",
    "StatefulSet",
    "Service",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
)
#: What every child carries, and what the watches and the audit's LIST select on.
CHILD_SELECTOR = {"app.kubernetes.io/managed-by": MANAGED_BY}
CHILD_SELECTOR_STRING = ",".join(f"{k}={v}" for k, v in CHILD_SELECTOR.items())


class Auditor:
    """When each namespace was last audited; thread-safe (resyncs of one namespace run on several threads)."""

    def __init__(self, kube: Kube, cache: ChildCache, period: float, clock: Callable[[], float]) -> None:
        self.kube = kube
        self.cache = cache
        self.period = period
        self.clock = clock
        self._guard = threading.Lock()
        self._started = clock()  # the watches' first listing is the first audit
        self._last: dict[str, float] = {}

    def run_if_due(self, namespace: str) -> set[Key]:
        """Audit ``namespace`` when a period has passed since its last audit (0: never); the MLBackends whose
        children were found gone."""
        if self.period <= 0:
            return set()
        now = self.clock()
        with self._guard:
            if now - self._last.get(namespace, self._started) < self.period:
                return set()
            self._last[namespace] = (
                now  # before the LISTs: a resync of the same namespace meanwhile does not repeat them
            )
        owners: set[Key] = set()
        for kind in sorted(self.cache.kinds_in(namespace, WATCHED_KINDS)):
            mark = self.cache.audit_mark()
            try:
                listed = self.kube.names(kind, namespace, CHILD_SELECTOR_STRING)
            except Exception as exc:  # noqa: BLE001 - a safety net: a failed LIST must not fail the resync that ran it
                log.warning(
                    "audit of %s in %s: LIST failed (%s); next audit in %ss",
                    kind,
                    namespace,
                    getattr(exc, "reason", None) or type(exc).__name__,
                    self.period,
                )
                continue
            for ck, owner in self.cache.vanished(kind, namespace, listed, mark):
                log.warning("%s %s/%s is gone though no watch event said so: its MLBackend applies it again", *ck)
                owners.add(owner)
        return owners
