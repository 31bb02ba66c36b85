"""What this process knows about each MLBackend's children, indexed by the MLBackend that owns them.

- ``observed``: the last body seen for a child (from apply answers and watch events), slimmed;
- ``applied``: (version, desired digest) of our last apply: a child whose version is still the one our
  apply produced and whose desired state did not change is not applied again;
- ``owned``: children whose controller owner reference was verified (owner uid): anything else is
  looked at before the first apply, so apply never takes over a foreign object;
- ``auth``: the Redis password Secret's (owner uid, resourceVersion).

Every entry is filed under its owner's key, so ``forget(owner)`` drops exactly that MLBackend's
entries (matching child names by prefix would drop ``a-b``'s when ``a`` is deleted). A restart
empties the cache; the first pass after it applies everything again (safe: apply is idempotent).
"""

from __future__ import annotations

import threading
from typing import Any

from ..builders.common import CONFIG_HASH_ANNOTATION
from ..keys import ChildKey, Key


def slim_child(obj: dict[str, Any]) -> dict[str, Any]:
    """What status and the skip-apply check read from a child; the rest (managedFields, pod template)
    is dropped so the cache stays small with hundreds of MLBackends."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
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
        "status": obj.get("status") or {},
    }


def version(obj: dict[str, Any]) -> str:
    """What changes when anyone edits a child's spec: generation where the kind has one, else resourceVersion."""
    meta = obj.get("metadata") or {}
    return f"g{meta['generation']}" if meta.get("generation") else f"rv{meta.get('resourceVersion')}"


class ChildCache:
    """Thread-safe: kopf runs handlers of different MLBackends (and child events) on a thread pool."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._observed: dict[ChildKey, dict[str, Any]] = {}
        self._applied: dict[ChildKey, tuple[str, str]] = {}
        self._owned: dict[ChildKey, str] = {}
        self._auth: dict[ChildKey, tuple[str, str]] = {}
        self._by_owner: dict[Key, set[ChildKey]] = {}

    # ---- reads --------------------------------------------------------------------------
    def observed(self, ck: ChildKey) -> dict[str, Any] | None:
        with self._guard:
            return self._observed.get(ck)

    def unchanged_since_apply(self, ck: ChildKey, digest: str) -> dict[str, Any] | None:
        """The observed child when it is still what our last apply of ``digest`` produced, else None."""
        with self._guard:
            observed = self._observed.get(ck)
            applied = self._applied.get(ck)
        return observed if observed is not None and applied == (version(observed), digest) else None

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

    def saw(self, owner: Key, ck: ChildKey, body: dict[str, Any]) -> None:
        """A watch event of a child."""
        with self._guard:
            self._file(owner, ck)
            self._observed[ck] = slim_child(body)

    def applied(self, owner: Key, ck: ChildKey, owner_uid: str, digest: str, result: dict[str, Any]) -> dict[str, Any]:
        """Our apply of ``digest`` answered ``result``; return the slim body kept."""
        slim = slim_child(result)
        with self._guard:
            self._file(owner, ck)
            self._owned[ck] = owner_uid
            self._applied[ck] = (version(result), digest)
            self._observed[ck] = slim
        return slim

    def auth_seen(self, owner: Key, ck: ChildKey, owner_uid: str, resource_version: str) -> None:
        with self._guard:
            self._file(owner, ck)
            self._auth[ck] = (owner_uid, resource_version)

    def drop(self, ck: ChildKey) -> None:
        """The child is gone (deleted by us, or its watch said DELETED)."""
        with self._guard:
            for cache in (self._observed, self._applied, self._owned):
                cache.pop(ck, None)

    def forget(self, owner: Key) -> None:
        """Drop every entry of a deleted MLBackend (keeps memory flat under churn), and nothing else."""
        with self._guard:
            for ck in self._by_owner.pop(owner, set()):
                for cache in (self._observed, self._applied, self._owned, self._auth):
                    cache.pop(ck, None)
