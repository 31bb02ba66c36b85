"""Step 1 of a pass: make the children match the spec, and report what they look like.

Server-side apply of each desired child, skipped while the watched child already holds it (its
``fingerprint``: the fields our apply owns, as we set them; so a pass of any trigger, a restart's
included, writes only what differs), the managed Redis' password Secret (created once), and, when
the policy says so, deletion of optional children the spec dropped. It returns what it
found (``Observed``) and the events it deserves; it never writes status.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from ..builders import Spec, desired_children
from ..builders import labels as L
from ..builders import redis as redis_builder
from ..keys import ChildKey, Key, child_key, key_of
from ..kube import APIError, Forbidden, Invalid, Kube, owned_by
from . import fingerprint
from .child_cache import ChildCache
from .events import NORMAL, WARNING, Event
from .observed import ForeignObject, Observed
from .trigger import Policy, Prune

log = logging.getLogger("lsml_operator")

# Children that may exist for some spec and not for another: removed when no longer desired.
OPTIONAL_CHILDREN: list[tuple[str, Callable[[str], str]]] = [
    ("Deployment", L.worker_name),
    ("StatefulSet", L.redis_name),
    ("Service", L.redis_name),
    ("PersistentVolumeClaim", L.models_claim_name),
    ("HorizontalPodAutoscaler", L.hpa_name),
    ("NetworkPolicy", L.network_policy_name),
]


# What the pods use by name: the model volume and the managed Redis (its Service, its StatefulSet behind it, its
# password). An object of one of these names that this MLBackend does not control would be what the pods mount or
# send the Redis password and `/setup` tokens to, so no server or worker pod runs while one exists.
POD_DEPENDENCIES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("PersistentVolumeClaim", L.models_claim_name),
    ("Service", L.redis_name),
    ("StatefulSet", L.redis_name),
    ("Secret", L.redis_auth_secret_name),
)
# The pods that use them.
POD_CHILDREN: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Deployment", L.server_name),
    ("Deployment", L.worker_name),
)
# What Label Studio reaches by name when the backend is registered: its Service, and the server pods behind it.
SERVING: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("Service", L.service_name),
    ("Deployment", L.server_name),
    *POD_DEPENDENCIES,
)


def taken(
    spec: Spec, foreign: list[ForeignObject], names: tuple[tuple[str, Callable[[str], str]], ...]
) -> list[ForeignObject]:
    """The foreign objects among ``names`` (kinds and namers of this MLBackend's children)."""
    wanted = {(kind, spec.namespace, namer(spec.name)) for kind, namer in names}
    return [f for f in foreign if (f.kind, f.namespace, f.name) in wanted]


class ChildrenStep:
    """Applies and prunes one MLBackend's children; the cache it shares with the watch makes a quiet pass free."""

    def __init__(self, kube: Kube, cache: ChildCache) -> None:
        self.kube = kube
        self.cache = cache

    def run(self, mlb: dict[str, Any], spec: Spec, policy: Policy, out: Observed) -> None:
        """Fill ``out``; filled as it goes, so the events of what was done survive a later refusal."""
        key = key_of(spec.body)
        configmap = None
        if spec.model.get("configMapName"):
            configmap = self.kube.configmap_data(spec.namespace, spec.model["configMapName"])
        auth_version = ""
        if spec.redis_managed:
            try:
                auth_version = self._redis_auth(mlb, spec, key, policy=policy, events=out.events)
            except ForeignObject as exc:
                out.foreign.append(exc)
            except Forbidden:
                out.redis_auth_error = (
                    f"the operator may not create Secret {spec.namespace}/"
                    f"{L.redis_auth_secret_name(spec.name)} for the Redis password "
                    "(RBAC; chart value rbac.secretNamespaces)"
                )
        desired: set[ChildKey] = set()
        pods = {(kind, spec.namespace, namer(spec.name)) for kind, namer in POD_CHILDREN}
        for child in desired_children(mlb, configmap_data=configmap, redis_auth_version=auth_version):
            ck = child_key(child)
            desired.add(ck)
            # the dependencies come first in apply order: when a pod child comes, every one of them is known
            dependencies_taken = taken(spec, out.foreign, POD_DEPENDENCIES) if ck in pods else []
            if dependencies_taken:
                self._withhold(ck, mlb["metadata"]["uid"], dependencies_taken, out.events)
                continue
            try:
                # no forced apply, even on full passes: the watches keep the fingerprints current
                out.live[ck] = self.ensure(key, child, force=False, expect_absent=policy.expect_absent)
            except ForeignObject as exc:
                out.foreign.append(exc)
        if policy.prune is not Prune.NONE:
            self._prune(spec, mlb["metadata"]["uid"], desired, policy.prune, out.events)

    def _withhold(self, ck: ChildKey, uid: str, taken: list[ForeignObject], events: list[Event]) -> None:
        """Run no pod against another owner's volume or Redis: the Deployment is not applied, and deleted when it
        exists (the next pass after the name is free creates it again)."""
        if self.kube.delete_owned(*ck, uid):
            names = ", ".join(f"{f.kind} {f.name}" for f in taken)
            events.append(
                Event(
                    WARNING,
                    "PodsWithheld",
                    f"deleted Deployment {ck[2]}: its pods would use {names}, not this MLBackend's",
                )
            )
        self.cache.drop(ck)

    def _check_owner(self, ck: ChildKey, owner_uid: str, owner: str) -> dict[str, Any] | None:
        """Raise ForeignObject when an object of the child's name exists that this MLBackend does not control; return
        the live object read (None: not read, the cache vouches for it, or there is none).

        Server-side apply with force would take over any object of the child's name (an MLBackend
        named like an existing Service would capture its traffic), so the first write of a child
        (after a restart, or after it was deleted) looks first. Verified children are remembered.
        """
        if self.cache.verified_owner(ck, owner_uid):
            return None
        obj = self.kube.get(*ck)
        if obj is not None and not owned_by(obj, owner_uid):
            raise ForeignObject(*ck, obj, owner)
        return obj

    def _redis_auth(self, mlb: dict[str, Any], spec: Spec, key: Key, *, policy: Policy, events: list[Event]) -> str:
        """Create the managed Redis' password Secret once; return its resourceVersion (rolls the pods when it changes).

        Created with POST, never applied: an existing Secret is kept as it is, so no reconcile
        regenerates the password (a Secret deleted by hand is recreated, and its new version rolls
        Redis and the pods). Looked at on full passes only; the password is never logged or put in
        status or events. The operator does not watch Secrets (it may not list them). A new MLBackend's Secret
        is created with no look first (``expect_absent``): a taken name answers 409, and is read then.
        """
        uid = mlb["metadata"]["uid"]
        name = L.redis_auth_secret_name(spec.name)
        ck: ChildKey = ("Secret", spec.namespace, name)
        known = self.cache.auth_version(ck, uid)
        if known is not None and not policy.full:
            return known
        live = None if policy.expect_absent and known is None else self.kube.get(*ck)
        if live is None:
            live, created = self.kube.create_or_get(redis_builder.build_auth_secret(mlb, redis_builder.new_password()))
            if created:
                events.append(Event(NORMAL, "RedisPasswordCreated", f"generated the Redis password in Secret {name}"))
        if not owned_by(live, uid):
            raise ForeignObject("Secret", spec.namespace, name, live, spec.name)
        resource_version = str(live["metadata"].get("resourceVersion", ""))
        self.cache.auth_seen(key, ck, uid, resource_version)
        return resource_version

    def ensure(self, key: Key, child: dict[str, Any], *, force: bool, expect_absent: bool = False) -> dict[str, Any]:
        """Apply one child unless the cache shows applying it would change nothing (``force``: apply anyway, for
        a kind no watch follows); a 422 on a hand-edited child replaces it. ``expect_absent`` (a new
        MLBackend): a child this process never saw is created by a create-only apply; only when that is refused
        (409 for a taken name, or any other refusal) is the name read and the usual check-then-apply done.

        Raises ForeignObject for an object of the child's name this MLBackend does not control, and the
        API's refusals (``kube_errors``) as they come: the monitoring step catches NotFound and Forbidden."""
        ck = child_key(child)
        want = fingerprint.content_digest(child)
        desired = functools.partial(fingerprint.of_desired, child)  # only when our last apply does not vouch for it
        if not force:
            cached = self.cache.unchanged_since_apply(ck, want, desired)
            if cached is not None:
                return cached
        owner_ref = child["metadata"]["ownerReferences"][0]
        if expect_absent and self.cache.observed(ck) is None and not self.cache.verified_owner(ck, owner_ref["uid"]):
            mark = self.cache.mark(ck)
            try:
                created = self.kube.apply(child, only_if_absent=True)
            except APIError:
                # 409: the name is taken (by us before a restart, or by another owner). On a taken name the API
                # server merges our apply into the object and runs admission before it checks the precondition,
                # so a webhook's refusal or a failed merge can answer instead: nothing was written either way, and
                # the owner check below says whose the name is (a free name's own refusal comes back from apply).
                pass
            else:
                return self.cache.applied(key, ck, owner_ref["uid"], want, created, since=mark)
        mark = self.cache.mark(ck)
        live = self._check_owner(ck, owner_ref["uid"], owner_ref["name"])
        if live is not None and not force:
            # read before the first write (a restart whose watches have not listed this child yet): in sync, no write
            self.cache.read(key, ck, live, since=mark)
            cached = self.cache.unchanged_since_apply(ck, want, desired)
            if cached is not None:
                return cached
        mark = self.cache.mark(ck)
        try:
            result = self.kube.apply(child)
        except Invalid as exc:
            # A hand edit that apply cannot merge back (e.g. a Service port renumbered: the desired
            # port becomes a second entry with a duplicate name) is invalid as merged: replace the child.
            if not self.kube.delete_owned(*ck, owner_ref["uid"]):
                raise
            log.warning("%s %s/%s could not be restored in place (%s): replaced", *ck, exc.reason)
            result = self.kube.apply(child)
        return self.cache.applied(key, ck, owner_ref["uid"], want, result, since=mark)

    def _prune(self, spec: Spec, uid: str, desired: set[ChildKey], prune: Prune, events: list[Event]) -> None:
        """Delete optional children the spec no longer wants.

        ``ASK_API`` (spec updates, resume after a restart) asks the API server about each; ``SEEN``
        (the periodic resync) only looks at children the watches have shown us (every labelled child
        is listed when the watches start), so it costs no request when nothing is stale.
        """
        for kind, namer in OPTIONAL_CHILDREN:
            ck: ChildKey = (kind, spec.namespace, namer(spec.name))
            if ck in desired:
                continue
            if prune is Prune.SEEN and self.cache.observed(ck) is None:
                continue
            if self.kube.delete_owned(*ck, uid):
                events.append(Event(NORMAL, "ChildDeleted", f"deleted {kind} {ck[2]}: no longer in the spec"))
            self.cache.drop(ck)
