"""Model quality from the backend itself: the kopf timer's poll of its ``/versions``, KubeRay's dashboard poll.

Every ``LSML_OPERATOR_QUALITY_SECONDS`` (``QualityStep.begin``) the timer hands each MLBackend to ``QualityStep.run``:
only while its ServerAvailable condition is True (a backend that is not up has nothing to say),
it reads the Basic credentials of ``spec.basicAuth`` from their Secret, asks the backend's Service
(or its ``LSML_OPERATOR_BACKEND_URLS`` entry) which version each project serves
(``backend_api``, bounded timeout and body) and returns ``status.served`` / ``status.score``
(``quality_status``) with the ``CandidateHeld`` events their change deserves. A backend that does
not answer leaves status as it was (no flapping column) and is logged once per distinct failure.
The credentials go to that URL only; they are never in status, events or logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backend_api import BackendClient, BackendUnavailable, served_versions
from ..builders import Spec
from ..keys import Key, key_of
from ..kube import Kube
from ..settings import OperatorSettings
from ..status import CHILDREN_OWNED, SERVER_AVAILABLE
from .events import Event
from .quality_status import held_events, quality_status

log = logging.getLogger("lsml_operator")

ClientFactory = Callable[[str, "tuple[str, str] | None", float], BackendClient]


@dataclass(frozen=True)
class QualityResult:
    """The status fields to write (None: leave status alone) and the events of what changed."""

    fields: dict[str, Any] | None
    events: list[Event]


def server_available(status: dict[str, Any]) -> bool:
    return any(c.get("type") == SERVER_AVAILABLE and c.get("status") == "True" for c in status.get("conditions") or [])


def children_taken(status: dict[str, Any]) -> bool:
    """ChildrenOwned is False: a child's name, perhaps the Service's, is someone else's object, which must not get
    the backend's Basic credentials."""
    return any(c.get("type") == CHILDREN_OWNED and c.get("status") == "False" for c in status.get("conditions") or [])


class QualityStep:
    """Owns the backend API side of the operator: one poll per call, the last failure per MLBackend (for the log)."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        client_factory: ClientFactory = BackendClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.client_factory = client_factory
        self._guard = threading.Lock()
        self._failures: dict[Key, str] = {}
        # (namespace, Secret, user key, password key) -> (read again after, (user, password))
        self._credentials: dict[tuple[str, str, str, str], tuple[float, tuple[str, str]]] = {}
        self._polled: dict[Key, float] = {}  # when the timer last started a poll of each MLBackend
        self._polling: set[Key] = set()  # MLBackends whose poll has started and not ended
        self.clock = clock

    def begin(self, key: Key, tick: float) -> bool:
        """Whether the timer, waking every ``tick`` seconds, should start a poll of this MLBackend now: its period
        is over and its last poll has ended. A yes is recorded; ``end`` must follow when that poll is over.

        The poll rides on the reconcile's timer instead of a kopf timer of its own: a second timer per MLBackend
        was a thousand more tasks (and ~7 MB) at 1,000 MLBackends, for one decision a tick. The timer does not wait
        for the poll (a thousand backends that do not answer would queue on the poll's threads and hold every
        MLBackend's retries and resyncs behind them); one poll at a time per MLBackend, as the timer of its own
        gave. Half a tick of slack keeps a poll from slipping a whole tick when the timer's wake-ups drift (kopf
        counts each interval from the end of the last handler), so the period is ``LSML_OPERATOR_QUALITY_SECONDS``
        rounded to the nearest multiple of the tick."""
        if self.settings.quality_seconds <= 0:
            return False
        now = self.clock()
        with self._guard:
            last = self._polled.get(key)
            if key in self._polling or (last is not None and now - last < self.settings.quality_seconds - tick / 2):
                return False
            self._polled[key] = now
            self._polling.add(key)
        return True

    def end(self, key: Key) -> None:
        """The poll ``begin`` allowed is over (done, failed or cancelled): the next one may start when due."""
        with self._guard:
            self._polling.discard(key)

    def _failed(self, key: Key, why: str) -> QualityResult:
        with self._guard:
            repeated = self._failures.get(key) == why
            self._failures[key] = why
        if not repeated:
            log.info("%s/%s: model quality not read from the backend: %s", key[0], key[1], why)
        return QualityResult(None, [])

    def forget(self, key: Key) -> None:
        with self._guard:
            self._failures.pop(key, None)
            self._polled.pop(key, None)

    def basic_auth(self, spec: Spec) -> tuple[str, str] | None:
        """The backend's Basic credentials (``spec.basicAuth``), or None; KeyError naming a missing Secret or key.

        Read from the Secret once per resync period (``LSML_OPERATOR_RESYNC_SECONDS``) and kept in memory
        meanwhile: the poll runs every few seconds for every backend, and the operator may not watch Secrets.
        A rotated password is used from the next period on (a poll refused meanwhile is logged, nothing else)."""
        ba = spec.raw.get("basicAuth")
        if not ba:
            return None
        ref = (spec.namespace, ba["secretName"], ba["usernameKey"], ba["passwordKey"])
        now = self.clock()
        with self._guard:
            cached = self._credentials.get(ref)
        if cached is not None and now < cached[0]:
            return cached[1]
        user, _ = self.kube.secret_value(spec.namespace, ba["secretName"], ba["usernameKey"])
        password, _ = self.kube.secret_value(spec.namespace, ba["secretName"], ba["passwordKey"])
        with self._guard:
            self._credentials[ref] = (now + self.settings.resync_seconds, (user, password))
        return user, password

    def run(self, mlb: dict[str, Any], old: dict[str, Any]) -> QualityResult:
        """Poll the backend when its server is available; the new quality fields and events, or None fields."""
        key = key_of(mlb)
        if mlb["metadata"].get("deletionTimestamp") or not server_available(old) or children_taken(old):
            return QualityResult(None, [])
        spec = Spec(mlb)
        try:
            auth = self.basic_auth(spec)
        except KeyError as exc:
            return self._failed(key, str(exc).strip("'\""))
        url = self.settings.backend_url(spec.namespace, spec.name, spec.service_url)
        client = self.client_factory(url, auth, self.settings.backend_timeout)
        try:
            served, left_out = served_versions(client)
        except BackendUnavailable as exc:
            return self._failed(key, str(exc))
        finally:
            client.close()
        with self._guard:
            recovered = self._failures.pop(key, None) is not None
        if recovered:
            log.info("%s/%s: model quality read from the backend again", key[0], key[1])
        if left_out:
            log.debug("%s/%s: %d more projects than status shows", key[0], key[1], left_out)
        gate = spec.model_spec.quality_gate
        fields = quality_status(served, gate.metric if gate else None)
        return QualityResult(fields, held_events(old, fields))
