"""What this process knows about each MLBackend's children, indexed by the MLBackend that owns them.

- ``observed``: the last body seen for a child (from apply answers and watch events), slimmed to what
  status reads (replicas, generation, the config hash) and the ``fingerprint`` of the fields our apply owns;
- ``applied``: (generation, desired digest, fingerprint of our apply's answer): a child still as our apply
  left it, whose desired state did not change, is not applied again;
- ``owned``: children whose controller owner reference was verified (owner uid), by a GET or by the watch
  that listed them: anything else is looked at before the first apply, so apply never takes over a
  foreign object;
- ``auth``: the Redis password Secret's (owner uid, resourceVersion);
- ``stamp``: a number moved by every watch event (and deletion) of a child, so that a write's answer that a
  newer watch event overtook does not replace it (``mark``, then ``applied(..., since=mark)``);
- ``seen``: the same counter's value when the child was last shown to exist (a watch event, a read, an apply's
  answer): the audit (``audit.py``) drops only children its LIST, sent after its mark, missed and nothing
  showed since.

Every entry is filed under its owner's key, so ``forget(owner)`` drops exactly that MLBackend's
entries (matching child names by prefix would drop ``a-b``'s when ``a`` is deleted). A restart
empties the cache; the watches list every child again, and a pass that finds a child not listed yet reads
it (the ownership check's GET) before its first write; a child whose fingerprint equals its desired state's
is not applied again (``fingerprint``): a restart with nothing changed writes nothing. (Not a kopf index,
which would make kopf wait for the lists: its per-object toggles made the start quadratic, minutes at
a thousand MLBackends.)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from ..builders.common import CONFIG_HASH_ANNOTATION
from ..keys import ChildKey, Key
from . import fingerprint

# what status and the skip-apply check read of a child's status (Deployment and StatefulSet counts)
_STATUS_KEYS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "phase")


def slim_child(obj: dict[str, Any], known: dict[str, Any] | None = None) -> dict[str, Any]:
    """What status and the skip-apply check read from a child; the rest (managedFields, the pod template,
    conditions) is dropped so the cache stays small with a thousand MLBackends.

    ``known``: the child's slim body from before; its fingerprint is kept when the fingerprint's source did not
    move (``fingerprint.live_source``), as in most watch events."""
    source = fingerprint.live_source(obj)
    if known is not None and source is not None and known.get("source") == source:
        live = known.get("fingerprint")
    else:
        live = fingerprint.of_live(obj)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    tmpl_ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    slim_spec: dict[str, Any] = {}
    if "replicas" in spec:
        slim_spec["replicas"] = spec["replicas"]
    if tmpl_ann.get(CONFIG_HASH_ANNOTATION):
        slim_spec["template"] = {
            "metadata": {"annotations": {CONFIG_HASH_ANNOTATION: tmpl_ann[CONFIG_HASH_ANNOTATION]}}
        }
    return {
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation", "resourceVersion") if k in meta},
        "spec": slim_spec,
        "status": {k: status[k] for k in _STATUS_KEYS if k in status},
        "fingerprint": live,
        "source": source,
    }


def _generation(obj: dict[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("generation")


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return None


def _comparable(slim: dict[str, Any]) -> dict[str, Any]:
    """A slim body without its resourceVersion (which every write moves) and its fingerprint's source (which an
    annotation of another controller moves; the fingerprint says whether anything of ours did)."""
    meta = {k: v for k, v in slim["metadata"].items() if k != "resourceVersion"}
    return {**slim, "metadata": meta, "source": None}


class Applied(NamedTuple):
    """Our last apply of a child: the generation it produced, the desired digest, the fingerprint of the answer."""

    generation: Any
    digest: str
    fingerprint: str | None


class ChildCache:
    """Thread-safe: kopf runs handlers of different MLBackends (and child events) on a thread pool."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._observed: dict[ChildKey, dict[str, Any]] = {}
        self._applied: dict[ChildKey, Applied] = {}
        self._owned: dict[ChildKey, str] = {}
        self._auth: dict[ChildKey, tuple[str, str]] = {}
        self._stamp: dict[ChildKey, int] = {}
        self._seen: dict[ChildKey, int] = {}
        self._stamps = itertools.count(1)
        self._by_owner: dict[Key, set[ChildKey]] = {}
        self._owner_of: dict[ChildKey, Key] = {}

    # ---- reads --------------------------------------------------------------------------
    def observed(self, ck: ChildKey) -> dict[str, Any] | None:
        with self._guard:
            return self._observed.get(ck)

    def unchanged_since_apply(self, ck: ChildKey, digest: str, desired: Callable[[], str]) -> dict[str, Any] | None:
        """The observed child when applying the desired child (``digest``; ``desired`` makes its fingerprint) would
        change nothing, else None: it is still what our last apply of the same desired state answered (same
        generation and fingerprint), or its fingerprint is the desired one.

        ``desired`` is called only when the first does not hold (after a restart, or a change): canonicalising a
        desired Deployment costs ten times its digest, and most passes find the children as they applied them."""
        with self._guard:
            observed = self._observed.get(ck)
            applied = self._applied.get(ck)
        if observed is None:
            return None
        live = observed.get("fingerprint")
        if applied is not None and applied == (_generation(observed), digest, live):
            return observed
        if live is not None and live == desired():
            return observed
        return None

    def mark(self, ck: ChildKey) -> int | None:
        """Where the child's watch stood, taken before a request whose answer is a body of the child (``since``)."""
        with self._guard:
            return self._stamp.get(ck)

    def verified_owner(self, ck: ChildKey, owner_uid: str) -> bool:
        with self._guard:
            return self._owned.get(ck) == owner_uid

    def auth_version(self, ck: ChildKey, owner_uid: str) -> str | None:
        with self._guard:
            known = self._auth.get(ck)
        return known[1] if known is not None and known[0] == owner_uid else None

    # ---- writes -------------------------------------------------------------------------
    def _file(self, owner: Key, ck: ChildKey) -> None:
        self._by_owner.setdefault(owner, set()).add(ck)
        self._owner_of[ck] = owner

    def owner_of(self, ck: ChildKey) -> Key | None:
        """The MLBackend a known child is filed under (a child whose owner reference was removed by hand is still
        recognised, and applied back)."""
        with self._guard:
            return self._owner_of.get(ck)

    def saw(self, owner: Key, ck: ChildKey, body: dict[str, Any]) -> str:
        """A watch event of a child (its controller is ``owner``: the watch's body is proof of ownership).

        Returns ``new`` (not seen before), ``changed`` (something status or the skip-apply check reads
        changed) or ``same`` (e.g. a controller's annotation, a condition's timestamp: nothing to do)."""
        slim = slim_child(body, self.observed(ck))
        with self._guard:
            self._stamp[ck] = self._seen[ck] = next(self._stamps)
            old = self._observed.get(ck)
            self._keep(owner, ck, slim, _controller_uid(body))
        if old is None:
            return "new"
        return "same" if _comparable(old) == _comparable(slim) else "changed"

    def read(self, owner: Key, ck: ChildKey, body: dict[str, Any], since: int | None) -> None:
        """Our GET of a child (``since``: its ``mark`` before the request) answered ``body``: kept unless a watch
        event came meanwhile, which is as new or newer (the watch delivers every later version in order)."""
        slim = slim_child(body, self.observed(ck))
        with self._guard:
            if self._stamp.get(ck) == since:
                self._keep(owner, ck, slim, _controller_uid(body))
                self._seen[ck] = next(self._stamps)

    def _keep(self, owner: Key, ck: ChildKey, slim: dict[str, Any], uid: str | None) -> None:
        """File a body read from the API as the child's observed one (its controller, when named, as verified).
        Call with self._guard held."""
        self._file(owner, ck)
        self._observed[ck] = slim
        if uid:
            self._owned[ck] = uid

    def applied(
        self, owner: Key, ck: ChildKey, owner_uid: str, digest: str, result: dict[str, Any], since: int | None
    ) -> dict[str, Any]:
        """Our apply of ``digest`` answered ``result`` (``since``: the child's ``mark`` before the request); return
        the answer, slimmed, for the pass that applied.

        The cache keeps the answer only when no watch event of the child came during the request. One that came
        may be newer than the answer: a StatefulSet recreated by our apply is made ready by its controller (and
        kwok) in milliseconds, and that event can be handled before a loaded operator reads the answer. Kept, the
        older answer would stand until the child's next event, which may never come: status stuck at
        "generation not observed yet". The event may also be older than the answer; then the watch has the
        apply's own version still to deliver (a new event, so a new pass)."""
        slim = slim_child(result, self.observed(ck))
        with self._guard:
            self._file(owner, ck)
            self._owned[ck] = owner_uid
            self._applied[ck] = Applied(_generation(result), digest, slim["fingerprint"])
            self._seen[ck] = next(self._stamps)
            if self._stamp.get(ck) == since:
                self._observed[ck] = slim
        return slim

    def auth_seen(self, owner: Key, ck: ChildKey, owner_uid: str, resource_version: str) -> None:
        with self._guard:
            self._file(owner, ck)
            self._auth[ck] = (owner_uid, resource_version)

    def drop(self, ck: ChildKey) -> None:
        """The child is gone (deleted by us, or its watch said DELETED)."""
        with self._guard:
            self._drop(ck)

    def _drop(self, ck: ChildKey) -> None:
        """``drop`` with self._guard held."""
        for cache in (self._observed, self._applied, self._owned, self._seen):
            cache.pop(ck, None)
        if ck in self._owner_of:  # a stamp lives as long as the filing (``forget``), not longer
            self._stamp[ck] = next(self._stamps)

    # ---- the audit (audit.py) -------------------------------------------------------------
    def audit_mark(self) -> int:
        """A point in the cache's history, taken before the audit's LIST is sent."""
        with self._guard:
            return next(self._stamps)

    def kinds_in(self, namespace: str, kinds: Collection[str]) -> set[str]:
        """The kinds among ``kinds`` of which the cache holds a child in ``namespace`` (what an audit must list)."""
        with self._guard:
            return {ck[0] for ck in (*self._observed, *self._applied) if ck[1] == namespace and ck[0] in kinds}

    def vanished(self, kind: str, namespace: str, listed: Collection[str], mark: int) -> list[tuple[ChildKey, Key]]:
        """Drop, and return with their owners, the children of ``kind`` in ``namespace`` the cache holds that a LIST
        sent after ``mark`` did not name (``listed``) and that nothing showed to exist after ``mark``: deleted
        before that LIST, unseen by the watch. A child created while the LIST ran is kept (its apply's answer or
        watch event came after the mark), whichever of the two came first."""
        with self._guard:
            gone = [
                ck
                for ck in {*self._observed, *self._applied}
                if ck[0] == kind and ck[1] == namespace and ck[2] not in listed and self._seen.get(ck, 0) < mark
            ]
            found = [(ck, self._owner_of[ck]) for ck in gone if ck in self._owner_of]
            for ck in gone:
                self._drop(ck)
        return found

    def forget(self, owner: Key) -> None:
        """Drop every entry of a deleted MLBackend (keeps memory flat under churn), and nothing else."""
        with self._guard:
            for ck in self._by_owner.pop(owner, set()):
                for cache in (
                    self._observed,
                    self._applied,
                    self._owned,
                    self._auth,
                    self._owner_of,
                    self._stamp,
                    self._seen,
                ):
                    cache.pop(ck, None)
