"""The one idempotent reconcile, as KubeRay's controller does it: steps, a pure status, one write.

Every trigger (create, update, resume, the timer, a child's watch event) ends in
``Reconciler.reconcile(mlb, trigger)``, which runs, under the MLBackend's lock:

1. ``ChildrenStep``: apply the desired children (skipping those unchanged since our apply),
   delete those the spec dropped (when the trigger's policy prunes); then ``MonitoringStep``: the
   ServiceMonitor spec.monitoring asks for (its kind may not be served: a condition, not a failure);
2. ``PodsStep``: only while a component is unavailable, read why from its pods;
3. ``LabelStudioStep``: register (or unwire) in Label Studio, and return what it found;
4. ``build_status``: the new status from the above, pure;
5. ``StatusWriter.write_if_changed``: the only status write;

then posts the events the steps and the status returned. This class only schedules:
per-object locks and coalescing, the parents' cache, the timer's decision (``tick_due``).
The same timer starts ``poll_quality`` when ``QualityStep.begin`` allows (the backend's own ``/versions``), under the
same per-object lock, which writes only ``status.served``/``status.score`` when they changed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import metrics, pod_diagnosis, registration
from ..backend_api import BackendClient
from ..builders import Spec
from ..keys import ChildKey, Key, child_key, controller_owner, key_of
from ..kube import Kube
from ..settings import OperatorSettings
from ..status import SERVER_AVAILABLE, Check, foreign_check, now_rfc3339
from .audit import Auditor
from .backoff import Backoff
from .build_status import POD_COMPONENTS, build_status, component_checks
from .child_cache import ChildCache
from .children import SERVING, ChildrenStep, taken
from .events import Event, EventSink
from .labelstudio_step import LabelStudioStep
from .monitoring import MonitoringStep
from .observed import LabelStudioResult, Observed
from .pods import PodsStep
from .quality_step import ClientFactory, QualityStep
from .registration_record import ANNOTATION as REGISTRATION_ANNOTATION
from .registration_record import RegistrationRecords
from .status_write import StatusWriter
from .trigger import RERUN, Trigger, policy

log = logging.getLogger("lsml_operator")

#: how many finalized MLBackends a process remembers (their uids): far more than can have a pass in flight
_FINALIZED_KEPT = 4096


def _slim_parent(obj: dict[str, Any]) -> dict[str, Any]:
    """An MLBackend without managedFields and kopf's annotations (which repeat the whole spec). The registration
    record stays: a child event's pass that unwires Label Studio reads where it registered from it (a restarted
    operator has no copy of its own)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("managedFields", "annotations")}
    record = ((obj.get("metadata") or {}).get("annotations") or {}).get(REGISTRATION_ANNOTATION)
    if record is not None:
        meta["annotations"] = {REGISTRATION_ANNOTATION: record}
    return {**{k: v for k, v in obj.items() if k != "metadata"}, "metadata": meta}


def _log_event(body: dict[str, Any], etype: str, reason: str, message: str) -> None:
    log.info("%s %s: %s", etype, reason, message)


class Reconciler:
    """The operator's state for one process: the steps (and their caches), locks, parents, timer bookkeeping."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        ls_factory: registration.ClientFactory = registration.default_client_factory,
        events: EventSink = _log_event,
        clock: Callable[[], float] = time.monotonic,
        backend_factory: ClientFactory | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.events = events
        self.clock = clock
        self.backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds, clock)
        self.cache = ChildCache()
        self.children = ChildrenStep(kube, self.cache)
        self.auditor = Auditor(kube, self.cache, settings.audit_seconds, clock)
        self.pods = PodsStep(kube)
        # its own backoff: a missing ServiceMonitor CRD must not delay Label Studio retries, nor the reverse
        self.monitoring_backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds, clock)
        self.monitoring = MonitoringStep(kube, self.cache, self.children, self.monitoring_backoff)
        self.records = RegistrationRecords(kube)
        self.label_studio = LabelStudioStep(kube, settings, ls_factory, self.backoff, self.records)
        self.status = StatusWriter(kube)
        self.quality = QualityStep(kube, settings, backend_factory or BackendClient, clock)
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._dirty: set[Key] = set()
        self._queued: set[Key] = set()  # MLBackends whose child-event pass is queued and not started yet
        self._last_full: dict[Key, float] = {}
        # key -> (failing causes, next pod read, last wait): the diagnosis timer's backoff (``_diagnosis_due``)
        self._diagnosis: dict[Key, tuple[tuple[str, ...], float, float]] = {}
        # what the last watch event of each child changed ("new", "changed", "same"), until its event handler asks
        self._stirred: dict[ChildKey, str] = {}
        # MLBackend bodies from their own watch stream: a child event finds its parent without a GET
        self._parents: dict[Key, dict[str, Any]] = {}
        # uids of MLBackends whose registrations ``finalize`` deleted: a pass that carries a body read before the
        # deletion (a timer's, queued behind busy threads) must not register them again. The newest only.
        self._finalized: collections.OrderedDict[str, None] = collections.OrderedDict()

    # ---- watch events and caches -------------------------------------------------------
    def observe_child(self, body: dict[str, Any]) -> None:
        """Record a child as its watch shows it (kopf's index handler: before any handler of any object runs)."""
        if not body.get("kind"):
            return
        ck: ChildKey = child_key(body)
        owner = controller_owner(body) or self.cache.owner_of(ck)
        if owner is None:
            return
        seen = self.cache.saw(owner, ck, body)
        with self._guard:
            self._stirred[ck] = seen

    def child_event(self, event_type: str | None, body: dict[str, Any]) -> Key | None:
        """A child's watch event (after ``observe_child`` recorded it): its MLBackend's key when the event is worth a
        pass, else None. Worth one: a deletion, or a change of what status or the skip-apply check read. Not
        worth one: the initial listing of a child first seen (its MLBackend's own resume pass reads it), or an
        event that changed nothing we read (a controller's annotation, a condition's heartbeat)."""
        if not body.get("kind"):
            return None
        ck: ChildKey = child_key(body)
        owner = controller_owner(body) or self.cache.owner_of(ck)
        if owner is None:
            return None
        with self._guard:
            seen = self._stirred.pop(ck, "changed")
        if event_type == "DELETED":
            self.cache.drop(ck)
            return owner
        if seen == "same" or (seen == "new" and event_type is None):
            return None
        return owner

    def request_pass(self, key: Key) -> bool:
        """A child event asks for a pass of ``key``: True when the caller should queue one (``run_requested_pass``);
        False when one is queued already, or running (then marked to run once more), which will see the event."""
        with self._guard:
            if key in self._queued:
                return False
            lock = self._locks.get(key)
            if lock is not None and lock.locked():
                self._dirty.add(key)
                return False
            self._queued.add(key)
            return True

    def run_requested_pass(self, key: Key) -> dict[str, Any] | None:
        """The pass ``request_pass`` queued, with the latest body of the MLBackend (none once it is being deleted)."""
        with self._guard:
            self._queued.discard(key)
        parent = self.parent(key)
        if parent is None or (parent.get("metadata") or {}).get("deletionTimestamp"):
            return None
        return self.reconcile(parent, Trigger.CHILD_EVENT)

    def observe_parent(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Remember the latest MLBackend body seen on the watch (spec and generation are what matter)."""
        key = key_of(body)
        with self._guard:
            if event_type == "DELETED":
                self._parents.pop(key, None)
            else:
                self._parents[key] = _slim_parent(body)

    def parent(self, key: Key) -> dict[str, Any] | None:
        """The MLBackend for a child event: the watched body when we have one, else a GET."""
        with self._guard:
            body = self._parents.get(key)
        return body if body is not None else self.kube.get_mlbackend(*key)

    def forget(self, key: Key) -> None:
        """Drop every cache entry of a deleted MLBackend, and only its own (keeps memory flat under churn)."""
        self.cache.forget(key)
        self.backoff.forget(key)
        self.monitoring_backoff.forget(key)
        metrics.READY_BY_REASON.forget(key)
        self.status.forget(key)
        self.quality.forget(key)
        self.pods.forget(key)
        self.records.forget(key)
        with self._guard:
            self._last_full.pop(key, None)
            self._diagnosis.pop(key, None)
            self._parents.pop(key, None)
            self._locks.pop(key, None)
            self._dirty.discard(key)

    # ---- scheduling ---------------------------------------------------------------------
    def tick_due(self, mlb: dict[str, Any]) -> Trigger | None:
        """What the periodic timer should do now: RESYNC (resync_seconds since the last full pass), RETRY
        (a Label Studio or ServiceMonitor backoff is over), DIAGNOSE (a component is unavailable: its pods' cause can change
        without any child event, e.g. a pull error turning into a back-off), or nothing."""
        key = key_of(mlb)
        with self._guard:
            last_full = self._last_full.get(key, 0.0)
        if self.clock() - last_full >= self.settings.resync_seconds:
            return Trigger.RESYNC
        if self.backoff.due(key) or self.monitoring_backoff.due(key):
            return Trigger.RETRY
        return Trigger.DIAGNOSE if self._diagnosis_due(key, self._failing_causes(key)) else None

    def _failing_causes(self, key: Key) -> tuple[str, ...]:
        """The pod components the last status written says are down for a reason the pods may explain."""
        last = self.status.last(key) or {}
        return tuple(
            sorted(
                f"{c.get('type')}={c.get('reason', '')}"
                for c in last.get("conditions") or []
                if c.get("type") in POD_COMPONENTS
                and c.get("status") == "False"
                and pod_diagnosis.worth_diagnosing(Check(False, c.get("reason", ""), ""))
            )
        )

    def _diagnosis_due(self, key: Key, causes: tuple[str, ...]) -> bool:
        """Whether to read the pods of a backend whose components are down for ``causes`` now. At once when the
        causes are new, then after twice the last wait each time they stay the same (the timer's period, doubled
        up to ``8 x`` it, at most the resync period): a thousand backends waiting for their claims must not LIST
        their pods every few seconds, and a cause that changes is still seen on the next tick."""
        now = self.clock()
        with self._guard:
            if not causes:
                self._diagnosis.pop(key, None)
                return False
            known = self._diagnosis.get(key)
            if known is not None and known[0] == causes and now < known[1]:
                return False
            wait = self.settings.timer_seconds if known is None or known[0] != causes else known[2] * 2
            wait = min(wait, 8 * self.settings.timer_seconds, self.settings.resync_seconds)
            self._diagnosis[key] = (causes, now + wait, wait)
            return True

    def _diagnosed(self, key: Key) -> None:
        """The pods were just read and the status written from them: the causes that status shows become the known
        ones, on the backoff the diagnosis was on (a first one: a tick from now). Why: the causes are compared by the
        status's reasons, and a diagnosis renames them (ReplicasUnavailable becomes ImagePullFailed), so the next
        tick took its own explanation for a new cause and listed the pods again."""
        causes = self._failing_causes(key)
        now = self.clock()
        with self._guard:
            if not causes:
                self._diagnosis.pop(key, None)
                return
            known = self._diagnosis.get(key)
            if known is None:
                wait = min(self.settings.timer_seconds, self.settings.resync_seconds)
                self._diagnosis[key] = (causes, now + wait, wait)
            else:
                self._diagnosis[key] = (causes, known[1], known[2])

    def poll_quality(self, mlb: dict[str, Any]) -> bool:
        """Read the served versions and scores from the backend and write them when they changed (the quality
        timer). Skipped while a reconcile of the object runs (the next tick polls); returns whether it wrote."""
        key = key_of(mlb)
        lock = self._lock(key)
        if not lock.acquire(blocking=False):
            return False
        try:
            old = self.status.previous(mlb)
            result = self.quality.run(mlb, old)
            wrote = result.fields is not None and self.status.write_fields(mlb, old, result.fields)
        finally:
            with self._guard:
                lock.release()
                # a child event that came while the poll held the lock only marked the object: its pass is now
                rerun = key in self._dirty
                self._dirty.discard(key)
            if rerun and self.request_pass(key):
                self.run_requested_pass(key)
        self._post(mlb, result.events)
        return wrote

    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile(self, mlb: dict[str, Any], trigger: Trigger) -> dict[str, Any] | None:
        """Bring the children and the Label Studio registration to the spec; return the status computed.

        A trigger whose policy does not wait (child events, timer) finds the object busy: it marks
        it dirty and returns None at once, and the running reconcile runs once more (``RERUN``)
        with the latest body.
        """
        key = key_of(mlb)
        lock = self._lock(key)
        with self._guard:
            got = lock.acquire(blocking=False)
            if not got and not policy(trigger).wait_if_busy:
                self._dirty.add(key)
                if trigger is Trigger.DIAGNOSE:
                    # the re-run reads no pods (a child event's policy): the diagnosis is due again at the next tick
                    self._diagnosis.pop(key, None)
                return None
        if not got:
            lock.acquire()
        released = False
        try:
            while True:
                status = self._timed_pass(mlb, trigger)
                with self._guard:
                    if key not in self._dirty:
                        lock.release()
                        released = True
                        return status
                    self._dirty.discard(key)
                    mlb = self._parents.get(key) or mlb
                trigger = RERUN
        finally:
            if not released:
                lock.release()

    def _timed_pass(self, mlb: dict[str, Any], trigger: Trigger) -> dict[str, Any]:
        """``_pass``, counted and timed (lsml_operator.metrics), with the Ready reason it left recorded."""
        started = time.perf_counter()
        try:
            status = self._pass(mlb, trigger)
        except BaseException:
            metrics.RECONCILES.labels(trigger.value, "error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels(trigger.value, "ok").inc()
        metrics.READY_BY_REASON.record(key_of(mlb), status)
        return status

    def _pass(self, mlb: dict[str, Any], trigger: Trigger) -> dict[str, Any]:
        """One pass: the steps, the pure status, the write, then the events."""
        if mlb["metadata"].get("deletionTimestamp") or self._was_finalized(mlb):
            return dict(mlb.get("status") or {})
        rules = policy(trigger)
        spec = Spec(mlb)
        key = key_of(mlb)
        if rules.full:
            with self._guard:
                self._last_full[key] = self.clock()
        if trigger is Trigger.RESYNC:
            self._audit(spec.namespace)
        observed = Observed()
        ls_result = LabelStudioResult(None, {})
        try:
            self.children.run(mlb, spec, rules, observed)
            checks = component_checks(spec, observed)
            # child events (and the re-run they ask for) and the timer's RETRY reuse the last diagnosis; the timer's
            # DIAGNOSE (with its backoff), a new or changed spec and a restart read the pods. The resync reads them
            # when the diagnosis is due (the same backoff): it takes the tick's place when both are due (a resync
            # period at or under the timer's would otherwise leave a failure that began after creation unexplained
            # forever), and a thousand backends waiting for storage must not LIST their pods at every resync too.
            fresh = trigger in (Trigger.DIAGNOSE, Trigger.CREATE, Trigger.UPDATE, Trigger.RESUME) or (
                trigger is Trigger.RESYNC and self._diagnosis_due(key, self._failing_causes(key))
            )
            observed.explained = self.pods.explain(spec, checks, fresh=fresh)
            old = self.status.previous(mlb)
            self.monitoring.run(mlb, spec, rules, old, observed)
            ls_result = self.label_studio.run(
                spec,
                old,
                server_ok=checks[SERVER_AVAILABLE].ok,
                full=rules.full,
                foreign=foreign_check(serving).message if (serving := taken(spec, observed.foreign, SERVING)) else "",
            )
            result = build_status(old, spec, observed, ls_result, now=now_rfc3339())
            self.status.write_if_changed(mlb, old, result.status, full=rules.full)
            if fresh:
                self._diagnosed(key)
        finally:
            # what the steps did happened, even when a later step was refused (a Secret created, a backend registered)
            self._post(mlb, [*observed.events, *ls_result.events])
        self._post(mlb, result.events)  # the transitions of a status that was written
        return result.status

    def _audit(self, namespace: str) -> None:
        """The audit of the namespace when due (``audit.py``): its own MLBackend's gone children are applied by this
        pass; every other MLBackend with one gone gets its resync at the timer's next tick."""
        gone = self.auditor.run_if_due(namespace)
        with self._guard:
            for key in gone:
                if key in self._last_full:
                    self._last_full[key] = float("-inf")

    def _post(self, mlb: dict[str, Any], events: list[Event]) -> None:
        for e in events:
            self.events(mlb, e.type, e.reason, e.message)

    def finalize(self, mlb: dict[str, Any]) -> registration.Outcome | None:
        """Delete the Label Studio registrations of a resource being deleted (children go by garbage collection).
        KeyError when the token Secret is gone.

        Under the object's lock, like a pass: a pass that is registering it (a child event's, a timer's) finishes
        first, so the registration it makes is found and deleted here, not left behind; and no pass after this
        one registers it again (``_was_finalized``). The registrations are read from the status last written,
        fresher than the body kopf read before it waited."""
        key = key_of(mlb)
        uid = str(mlb["metadata"].get("uid") or "")
        with self._lock(key):
            with self._guard:
                if uid:
                    self._finalized[uid] = None
                while len(self._finalized) > _FINALIZED_KEPT:
                    self._finalized.popitem(last=False)
            outcome, events = self.label_studio.finalize({**mlb, "status": self.status.previous(mlb)})
        self._post(mlb, events)
        return outcome

    def _was_finalized(self, mlb: dict[str, Any]) -> bool:
        uid = str(mlb["metadata"].get("uid") or "")
        with self._guard:
            return bool(uid) and uid in self._finalized
