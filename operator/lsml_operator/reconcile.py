"""The one idempotent reconcile: fetch, compute, apply, status.

Every trigger (create, update, resume, the timer, a child's watch event) ends in
``Reconciler.reconcile``: it computes the desired children with the pure builders,
server-side-applies those that may differ from the cluster, registers the backend in
Label Studio when the server is available, and writes status only when it changed.

Two in-memory caches keep it cheap at scale without changing the outcome:
``_observed`` holds the last body seen for each child (from apply answers and watch
events) and ``_applied`` the (version, desired-hash) of our last apply. A child whose
version is still the one our apply produced and whose desired state did not change is
not re-applied; any foreign edit bumps its version and is overwritten. A restart empties
the caches, so the first pass after it applies everything again (safe: apply is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import pod_diagnosis, registration
from .builders import Spec, desired_children
from .builders import labels as L
from .builders import redis as redis_builder
from .kube import Kube, owned_by
from .settings import OperatorSettings
from .status import (
    CHILDREN_OWNED, LABEL_STUDIO_REGISTERED, READY, REDIS_READY, SERVER_AVAILABLE, WORKER_AVAILABLE,
    Check, deployment_check, foreign_check, now_rfc3339, ready_check, remove_condition, set_condition,
    statefulset_check, strip_volatile,
)

log = logging.getLogger("lsml_operator")

Key = tuple[str, str]                 # (namespace, name) of an MLBackend
ChildKey = tuple[str, str, str]       # (kind, namespace, name)
EventSink = Callable[[dict[str, Any], str, str, str], None]  # (body, type, reason, message)

# Conditions a pod can explain, and the component label of those pods.
POD_COMPONENTS: dict[str, str] = {SERVER_AVAILABLE: L.SERVER, WORKER_AVAILABLE: L.WORKER, REDIS_READY: L.REDIS}

# Children that may exist for some spec and not for another: removed when no longer desired.
OPTIONAL_CHILDREN: list[tuple[str, Callable[[str], str]]] = [
    ("Deployment", L.worker_name),
    ("StatefulSet", L.redis_name),
    ("Service", L.redis_name),
    ("PersistentVolumeClaim", L.models_claim_name),
    ("HorizontalPodAutoscaler", L.hpa_name),
    ("NetworkPolicy", L.network_policy_name),
]


class ForeignObject(Exception):
    """A child's name is taken by an object this MLBackend does not control: it is left untouched.

    ``stale``: it is controlled by a deleted MLBackend of the same name (deleted and re-created
    before the garbage collector got to its children); it goes away by itself.
    """

    def __init__(self, kind: str, namespace: str, name: str, obj: dict[str, Any] | None = None, owner: str = "") -> None:
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this MLBackend")
        self.kind, self.namespace, self.name = kind, namespace, name
        refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
        self.stale = any(r.get("kind") == "MLBackend" and r.get("name") == owner and r.get("controller") for r in refs)


def _version(obj: dict[str, Any]) -> str:
    """What changes when anyone edits a child's spec: generation where the kind has one, else resourceVersion."""
    meta = obj.get("metadata") or {}
    return f"g{meta['generation']}" if meta.get("generation") else f"rv{meta.get('resourceVersion')}"


def _digest(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _child_key(obj: dict[str, Any]) -> ChildKey:
    meta = obj["metadata"]
    return (obj["kind"], meta["namespace"], meta["name"])


def _slim_child(obj: dict[str, Any]) -> dict[str, Any]:
    """What status and the skip-apply check read from a child; the rest (managedFields, pod template)
    is dropped so the cache stays small with hundreds of MLBackends."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    tmpl_ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    slim_spec: dict[str, Any] = {}
    if "replicas" in spec:
        slim_spec["replicas"] = spec["replicas"]
    if tmpl_ann.get("lsml.dev/config-hash"):
        slim_spec["template"] = {"metadata": {"annotations": {"lsml.dev/config-hash": tmpl_ann["lsml.dev/config-hash"]}}}
    return {
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation", "resourceVersion") if k in meta},
        "spec": slim_spec,
        "status": obj.get("status") or {},
    }


def _slim_parent(obj: dict[str, Any]) -> dict[str, Any]:
    """An MLBackend without managedFields and kopf's annotations (which repeat the whole spec)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("managedFields", "annotations")}
    return {**{k: v for k, v in obj.items() if k != "metadata"}, "metadata": meta}


def _no_events(body: dict[str, Any], etype: str, reason: str, message: str) -> None:
    log.info("%s %s: %s", etype, reason, message)


class Reconciler:
    """Holds the caches, per-object locks and Label Studio retry state of one operator process."""

    def __init__(self, kube: Kube, settings: OperatorSettings,
                 ls_factory: registration.ClientFactory = registration.default_client_factory,
                 events: EventSink = _no_events) -> None:
        self.kube = kube
        self.settings = settings
        self.ls_factory = ls_factory
        self.events = events
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._observed: dict[ChildKey, dict[str, Any]] = {}
        self._applied: dict[ChildKey, tuple[str, str]] = {}
        # children whose ownership (our controller reference) was verified: child key -> owner uid.
        # Anything else is looked at before the first apply, so apply never takes over a foreign object.
        self._owned: dict[ChildKey, str] = {}
        self._auth_versions: dict[ChildKey, tuple[str, str]] = {}  # Redis auth Secret -> (owner uid, resourceVersion)
        self._retry: dict[Key, tuple[int, float]] = {}   # failures, monotonic time of the next attempt
        self._last_full: dict[Key, float] = {}
        # status as we last wrote it: reconciles of one object are serialized by its lock, so this is
        # fresher than the body a queued trigger carries (avoids double events and needless writes)
        self._last_status: dict[Key, tuple[str, dict[str, Any]]] = {}
        # MLBackend bodies from their own watch stream: a child event finds its parent without a GET
        self._parents: dict[Key, dict[str, Any]] = {}
        self._dirty: set[Key] = set()
        self._pods_refused: set[str] = set()  # namespaces where listing pods was refused (logged once)

    # ---- caches and scheduling -------------------------------------------------------
    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def observe_child(self, event_type: str | None, body: dict[str, Any]) -> Key | None:
        """Record a child's watch event; return its MLBackend's key when the child is ours."""
        meta = body.get("metadata") or {}
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "MLBackend" and r.get("controller")), None)
        if owner is None or not body.get("kind"):
            return None
        ck = (body["kind"], meta.get("namespace", ""), meta.get("name", ""))
        with self._guard:
            if event_type == "DELETED":
                self._observed.pop(ck, None)
                self._applied.pop(ck, None)
                self._owned.pop(ck, None)
            else:
                self._observed[ck] = _slim_child(body)
        return (meta.get("namespace", ""), owner["name"])

    def observe_parent(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Remember the latest MLBackend body seen on the watch (spec and generation are what matter)."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
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
        """Drop every cache entry of a deleted MLBackend (keeps memory flat under churn)."""
        ns, name = key
        with self._guard:
            for ck in [k for k in self._observed if k[1] == ns and k[2].startswith(name)]:
                self._observed.pop(ck, None)
            for ck in [k for k in self._applied if k[1] == ns and k[2].startswith(name)]:
                self._applied.pop(ck, None)
            for cache in (self._owned, self._auth_versions):
                for ck in [k for k in cache if k[1] == ns and k[2].startswith(name)]:
                    cache.pop(ck, None)
            self._retry.pop(key, None)
            self._last_full.pop(key, None)
            self._last_status.pop(key, None)
            self._parents.pop(key, None)
            self._locks.pop(key, None)

    def tick_due(self, mlb: dict[str, Any]) -> str | None:
        """What the periodic timer should do now: 'full' (resync), 'retry' (Label Studio backoff over),
        'diagnose' (a component is unavailable: its pods' cause can change without any child event,
        e.g. a pull error turning into a back-off), or None."""
        key = (mlb["metadata"]["namespace"], mlb["metadata"]["name"])
        now = time.monotonic()
        if now - self._last_full.get(key, 0.0) >= self.settings.resync_seconds:
            return "full"
        failures, next_at = self._retry.get(key, (0, 0.0))
        if failures and now >= next_at:
            return "retry"
        last = self._last_status.get(key)
        if last and any(c.get("type") in POD_COMPONENTS and c.get("status") == "False"
                        and pod_diagnosis.worth_diagnosing(Check(False, c.get("reason", ""), ""))
                        for c in last[1].get("conditions") or []):
            return "diagnose"
        return None

    def _note_failure(self, key: Key) -> float:
        failures, _ = self._retry.get(key, (0, 0.0))
        failures += 1
        delay = min(self.settings.retry_base_seconds * (2 ** (failures - 1)), self.settings.retry_max_seconds)
        self._retry[key] = (failures, time.monotonic() + delay)
        return delay

    def _retry_allowed(self, key: Key) -> bool:
        failures, next_at = self._retry.get(key, (0, 0.0))
        return failures == 0 or time.monotonic() >= next_at

    # ---- the reconcile ---------------------------------------------------------------
    def reconcile(self, mlb: dict[str, Any], *, full: bool = False, cleanup: bool = False,
                  coalesce: bool = False, thorough: bool = True) -> dict[str, Any] | None:
        """Bring the children and the Label Studio registration to the spec; return the status written.

        With ``coalesce`` (child events, timer) a call that finds the object busy does not wait: it
        marks the object dirty and returns at once, and the running reconcile runs once more with
        the latest body. A burst of child events then costs one extra pass, not one blocked worker
        thread each (which starved the create handlers of a few hundred new objects).
        """
        meta = mlb["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        lock = self._lock(key)
        with self._guard:
            got = lock.acquire(blocking=False)
            if not got and coalesce:
                self._dirty.add(key)
                return None
        if not got:
            lock.acquire()
        released = False
        try:
            while True:
                status = self._reconcile_locked(mlb, full=full, cleanup=cleanup, thorough=thorough)
                with self._guard:
                    if key not in self._dirty:
                        lock.release()
                        released = True
                        return status
                    self._dirty.discard(key)
                    mlb = self._parents.get(key) or mlb
                full = cleanup = False
        finally:
            if not released:
                lock.release()

    def _reconcile_locked(self, mlb: dict[str, Any], *, full: bool, cleanup: bool, thorough: bool) -> dict[str, Any]:
        meta = mlb["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp"):
            return mlb.get("status") or {}
        spec = Spec(mlb)
        if full:
            self._last_full[key] = time.monotonic()
        configmap = None
        if spec.model.get("configMapName"):
            configmap = self.kube.configmap_data(spec.namespace, spec.model["configMapName"])
        foreign: list[ForeignObject] = []
        auth_version = auth_error = ""
        if spec.redis_managed:
            try:
                auth_version = self._redis_auth(mlb, spec, full=full)
            except ForeignObject as exc:
                foreign.append(exc)
            except ApiException as exc:
                if exc.status != 403:
                    raise
                auth_error = (f"the operator may not create Secret {spec.namespace}/{L.redis_auth_secret_name(spec.name)} "
                              "for the Redis password (RBAC; chart value rbac.secretNamespaces)")
        live: dict[ChildKey, dict[str, Any]] = {}
        desired: set[ChildKey] = set()
        for child in desired_children(mlb, configmap_data=configmap, redis_auth_version=auth_version):
            desired.add(_child_key(child))
            try:
                live[_child_key(child)] = self._ensure(child, force=full)
            except ForeignObject as exc:
                foreign.append(exc)
        if cleanup:
            self._cleanup(spec, meta["uid"], desired, thorough)
        return self._write_status(mlb, spec, live, full=full, foreign=foreign, redis_auth_error=auth_error)

    def _check_owner(self, kind: str, namespace: str, name: str, owner_uid: str, owner: str) -> None:
        """Raise ForeignObject when an object of the child's name exists that this MLBackend does not control.

        Server-side apply with force would take over any object of the child's name (an MLBackend
        named like an existing Service would capture its traffic), so the first write of a child
        (after a restart, or after it was deleted) looks first. Verified children are remembered.
        """
        with self._guard:
            if self._owned.get((kind, namespace, name)) == owner_uid:
                return
        obj = self.kube.get(kind, namespace, name)
        if obj is not None and not owned_by(obj, owner_uid):
            raise ForeignObject(kind, namespace, name, obj, owner)

    def _redis_auth(self, mlb: dict[str, Any], spec: Spec, *, full: bool) -> str:
        """Create the managed Redis' password Secret once; return its resourceVersion (rolls the pods when it changes).

        Created with POST, never applied: an existing Secret is kept as it is, so no reconcile
        regenerates the password (a Secret deleted by hand is recreated, and its new version rolls
        Redis and the pods). Looked at on full passes only; the password is never logged or put in
        status or events. The operator does not watch Secrets (it may not list them).
        """
        uid = mlb["metadata"]["uid"]
        name = L.redis_auth_secret_name(spec.name)
        ck: ChildKey = ("Secret", spec.namespace, name)
        with self._guard:
            known = self._auth_versions.get(ck)
        if known is not None and known[0] == uid and not full:
            return known[1]
        live = self.kube.get("Secret", spec.namespace, name)
        if live is None:
            live, created = self.kube.create_or_get(redis_builder.build_auth_secret(mlb, redis_builder.new_password()))
            if created:
                self.events(mlb, "Normal", "RedisPasswordCreated", f"generated the Redis password in Secret {name}")
        if not owned_by(live, uid):
            raise ForeignObject("Secret", spec.namespace, name, live, spec.name)
        version = str(live["metadata"].get("resourceVersion", ""))
        with self._guard:
            self._auth_versions[ck] = (uid, version)
        return version

    def _ensure(self, child: dict[str, Any], *, force: bool) -> dict[str, Any]:
        ck = _child_key(child)
        digest = _digest(child)
        with self._guard:
            observed = self._observed.get(ck)
            applied = self._applied.get(ck)
        if not force and observed is not None and applied == (_version(observed), digest):
            return observed
        meta = child["metadata"]
        owner_uid = meta["ownerReferences"][0]["uid"]
        self._check_owner(child["kind"], meta["namespace"], meta["name"], owner_uid, meta["ownerReferences"][0]["name"])
        try:
            result = self.kube.apply(child)
        except ApiException as exc:
            # A hand edit that apply cannot merge back (e.g. a Service port renumbered: the desired
            # port becomes a second entry with a duplicate name) is invalid as merged: replace the child.
            if exc.status != 422:
                raise
            if not self.kube.delete_owned(child["kind"], meta["namespace"], meta["name"], owner_uid):
                raise
            log.warning("%s %s/%s could not be restored in place (%s): replaced", child["kind"],
                        meta["namespace"], meta["name"], exc.reason)
            result = self.kube.apply(child)
        slim = _slim_child(result)
        with self._guard:
            self._owned[ck] = owner_uid
            self._applied[ck] = (_version(result), digest)
            self._observed[ck] = slim
        return slim

    def _cleanup(self, spec: Spec, uid: str, desired: set[ChildKey], thorough: bool) -> None:
        """Delete optional children the spec no longer wants.

        ``thorough`` (spec updates, resume after a restart) asks the API server about each; the
        periodic resync only looks at children the watches have shown us (every labelled child
        is listed when the watches start), so it costs no request when nothing is stale.
        """
        for kind, namer in OPTIONAL_CHILDREN:
            ck = (kind, spec.namespace, namer(spec.name))
            if ck in desired:
                continue
            if not thorough:
                with self._guard:
                    if ck not in self._observed:
                        continue
            if self.kube.delete_owned(kind, spec.namespace, ck[2], uid):
                self.events(spec.body, "Normal", "ChildDeleted", f"deleted {kind} {ck[2]}: no longer in the spec")
            with self._guard:
                self._observed.pop(ck, None)
                self._applied.pop(ck, None)

    # ---- status ----------------------------------------------------------------------
    def _write_status(self, mlb: dict[str, Any], spec: Spec, live: dict[ChildKey, dict[str, Any]], *, full: bool,
                      foreign: list[ForeignObject] | None = None, redis_auth_error: str = "") -> dict[str, Any]:
        key: Key = (spec.namespace, spec.name)
        old: dict[str, Any] = dict(mlb.get("status") or {})
        cached = self._last_status.get(key)
        if cached and cached[0] == mlb["metadata"].get("uid"):
            old = dict(cached[1])
        generation = mlb["metadata"].get("generation")
        now = now_rfc3339()
        conds: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or []]
        checks: dict[str, Check] = {}

        server = live.get(("Deployment", spec.namespace, L.server_name(spec.name)))
        checks[SERVER_AVAILABLE] = deployment_check(server, "server")
        if spec.worker_enabled:
            checks[WORKER_AVAILABLE] = deployment_check(live.get(("Deployment", spec.namespace, L.worker_name(spec.name))), "worker")
        else:
            conds = remove_condition(conds, WORKER_AVAILABLE)
        if spec.redis_managed and redis_auth_error:
            checks[REDIS_READY] = Check(False, "PasswordSecretUnavailable", redis_auth_error)
        elif spec.redis_managed:
            checks[REDIS_READY] = statefulset_check(live.get(("StatefulSet", spec.namespace, L.redis_name(spec.name))))
        elif spec.redis is not None:
            ref = spec.redis["external"]["urlSecretRef"]
            checks[REDIS_READY] = Check(True, "External", f"external Redis, URL from Secret {ref['name']}")
        else:
            conds = remove_condition(conds, REDIS_READY)
        checks.update(self._diagnose(spec, checks))

        ls_status = dict(old.get("labelStudio") or {})
        if spec.label_studio is not None:
            checks[LABEL_STUDIO_REGISTERED], ls_status = self._registration(mlb, spec, old, ls_status, checks[SERVER_AVAILABLE].ok, full)
        else:
            conds = remove_condition(conds, LABEL_STUDIO_REGISTERED)
            ls_status = self._unwire(mlb, spec, ls_status)
        if foreign:
            checks[CHILDREN_OWNED] = foreign_check(foreign)
            prev = next((c for c in old.get("conditions") or [] if c.get("type") == CHILDREN_OWNED), None)
            if prev is None or prev.get("message") != checks[CHILDREN_OWNED].message:
                self.events(mlb, "Warning", "AdoptionRefused", checks[CHILDREN_OWNED].message)
        else:
            conds = remove_condition(conds, CHILDREN_OWNED)
        checks[READY] = ready_check(checks)
        for ctype, check in checks.items():
            conds = set_condition(conds, ctype, check, generation, now)

        status: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": conds,
            "url": spec.backend_url if spec.label_studio else spec.service_url,
            "replicas": int(((server or {}).get("status") or {}).get("replicas", 0)),
            "readyReplicas": int(((server or {}).get("status") or {}).get("readyReplicas", 0)),
            "selector": L.selector_string(spec.name, L.SERVER),
            "modelVersion": next((b.get("modelVersion") for b in ls_status.get("backends") or [] if b.get("modelVersion")), ""),
            "configHash": ((server or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}) or {}).get("lsml.dev/config-hash", ""),
        }
        status["labelStudio"] = ls_status if ls_status else None
        self._post_flips(mlb, old.get("conditions") or [], conds)
        new_cmp = strip_volatile({k: v for k, v in status.items() if v is not None})
        old_cmp = strip_volatile({k: v for k, v in old.items() if k in status})
        if not full:
            # between full passes, a change of progress text alone ("1/3 updated" -> "2/3 updated") is not
            # worth a write: status/reason changes are. Label Studio messages always are (they say why).
            for cmp in (new_cmp, old_cmp):
                cmp["conditions"] = [{k: v for k, v in c.items() if k != "message" or c["type"] == LABEL_STUDIO_REGISTERED}
                                     for c in cmp.get("conditions") or []]
        written = {k: v for k, v in status.items() if v is not None}
        if new_cmp != old_cmp:
            self.kube.patch_mlbackend_status(spec.namespace, spec.name, status)
        elif old:
            written = old  # nothing written: the server still has the old status
        self._last_status[key] = (mlb["metadata"].get("uid"), written)
        return status

    def _diagnose(self, spec: Spec, checks: dict[str, Check]) -> dict[str, Check]:
        """Name why components are unavailable, from their pods (``pod_diagnosis``).

        Costs nothing at steady state: only when a component is unavailable, one LIST of the
        MLBackend's pods (all components share the instance label), plus one LIST of its claims
        when a pod waits for one. A refusal (e.g. a chart older than this RBAC) keeps the plain
        replica count: a status without the cause beats no status.
        """
        failing = [t for t in POD_COMPONENTS if t in checks and pod_diagnosis.worth_diagnosing(checks[t])]
        if not failing:
            return {}
        selector = L.instance_selector(spec.name)
        try:
            pods = self.kube.list("Pod", spec.namespace, selector)
            claims = {}
            if pod_diagnosis.needs_claims(pods):
                claims = {c["metadata"]["name"]: c for c in self.kube.list("PersistentVolumeClaim", spec.namespace, selector)}
        except ApiException as exc:
            # once per namespace at WARNING: the timer retries every few seconds while a component is down
            level = logging.DEBUG if spec.namespace in self._pods_refused else logging.WARNING
            self._pods_refused.add(spec.namespace)
            log.log(level, "%s/%s: cannot list pods or claims to explain %s (%s %s)", spec.namespace, spec.name,
                    ", ".join(failing), exc.status, exc.reason)
            return {}
        return {t: pod_diagnosis.explain(checks[t], pod_diagnosis.diagnose(pod_diagnosis.by_component(pods, POD_COMPONENTS[t]), claims))
                for t in failing}

    def _post_flips(self, mlb: dict[str, Any], old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        """Events on flips only (not per reconcile): Ready becoming True, and any condition that was
        True turning False (with its reason). Readable history, a bounded number of event writes."""
        before = {c["type"]: c.get("status") for c in old}
        for c in new:
            if before.get(c["type"]) == c["status"]:
                continue
            if c["status"] == "True" and c["type"] == READY:
                self.events(mlb, "Normal", READY, c.get("message", ""))
            elif c["status"] == "False" and before.get(c["type"]) == "True":
                self.events(mlb, "Warning", f"Not{c['type']}", f"{c.get('reason')}: {c.get('message', '')}")

    # ---- Label Studio ----------------------------------------------------------------
    def target(self, spec: Spec) -> registration.Target:
        """Registration inputs, with the token and basic-auth credentials read from their Secrets."""
        ls = spec.label_studio or {}
        tok = ls["apiTokenSecretRef"]
        token, tok_rv = self.kube.secret_value(spec.namespace, tok["name"], tok.get("key", "token"))
        basic = None
        versions = [tok_rv]
        ba = spec.raw.get("basicAuth")
        if ba:
            user, rv = self.kube.secret_value(spec.namespace, ba["secretName"], ba["usernameKey"])
            password, _ = self.kube.secret_value(spec.namespace, ba["secretName"], ba["passwordKey"])
            basic = (user, password)
            versions.append(rv)
        return registration.Target(
            label_studio_url=ls["url"].rstrip("/"), backend_url=spec.backend_url,
            projects=tuple(int(p) for p in ls["projects"]),
            title=ls.get("title") or f"{spec.name} ({spec.namespace})",
            description=ls.get("description") or f"lsml MLBackend {spec.namespace}/{spec.name}",
            interactive=bool(ls.get("interactive", False)), timeout=float(ls.get("timeout", 100)),
            token=token, basic_auth=basic, secret_versions=tuple(versions),
        )

    def _registration(self, mlb: dict[str, Any], spec: Spec, old: dict[str, Any], ls_status: dict[str, Any],
                      server_ok: bool, full: bool) -> tuple[Check, dict[str, Any]]:
        key: Key = (spec.namespace, spec.name)
        recorded = list(ls_status.get("backends") or [])
        prev = next((c for c in old.get("conditions") or [] if c.get("type") == LABEL_STUDIO_REGISTERED), None)
        prev_check = Check(prev.get("status") == "True", prev.get("reason", ""), prev.get("message", "")) if prev else None
        if not server_ok and not (prev_check and prev_check.ok):
            return Check(False, "WaitingForServer", "registration waits until the server Deployment is available"), ls_status
        try:
            target = self.target(spec)
        except KeyError as exc:
            return Check(False, "SecretMissing", str(exc).strip("'\"")), ls_status
        fingerprint = target.fingerprint()
        due = full or fingerprint != ls_status.get("registrationHash") or not (prev_check and prev_check.ok)
        if not due:
            return prev_check, ls_status  # type: ignore[return-value]
        if not server_ok:
            return Check(False, "WaitingForServer", "the spec changed; re-registration waits for the server to be available"), ls_status
        if not self._retry_allowed(key):
            return (prev_check or Check(False, "RetryPending", "waiting to retry Label Studio")), ls_status
        outcome = registration.sync(target, recorded, self.ls_factory)
        # where the records live and the Secret that can delete them: what removing spec.labelStudio
        # (or deleting the resource after that) needs once the spec no longer says it. A name, never the token.
        tok = (spec.label_studio or {})["apiTokenSecretRef"]
        ls_status = {"backends": outcome.backends, "url": target.label_studio_url,
                     "apiTokenSecretRef": {"name": tok["name"], "key": tok.get("key", "token")}}
        if outcome.error:
            delay = self._note_failure(key)
            reason = "LabelStudioUnreachable" if outcome.unreachable else "LabelStudioRefused"
            if recorded != outcome.backends or prev_check is None or prev_check.message != outcome.error:
                self.events(mlb, "Warning", reason, f"{outcome.error} (retrying in {delay:.0f}s)")
            ls_status["registrationHash"] = ""
            return Check(False, reason, outcome.error), ls_status
        self._retry.pop(key, None)
        ls_status["registrationHash"] = fingerprint
        for rid in outcome.created:
            self.events(mlb, "Normal", "Registered", f"created Label Studio ML backend {rid} for {target.backend_url}")
        for rid in outcome.removed:
            self.events(mlb, "Normal", "Deregistered", f"deleted Label Studio ML backend {rid}")
        ids = ", ".join(f"project {b['project']}: {b['id']}" for b in outcome.backends)
        return Check(True, "Registered", f"registered in Label Studio ({ids})"), ls_status

    def status_target(self, namespace: str, ls_status: dict[str, Any]) -> registration.Target | None:
        """A deregistration target from status alone (spec.labelStudio removed): the Label Studio URL and
        token Secret recorded at registration. None when status records neither (an older operator wrote
        it); KeyError when the Secret or its key is gone."""
        backends = ls_status.get("backends") or []
        ref = ls_status.get("apiTokenSecretRef") or {}
        if not backends or not ls_status.get("url") or not ref.get("name"):
            return None
        token, _ = self.kube.secret_value(namespace, ref["name"], ref.get("key", "token"))
        return registration.Target(
            label_studio_url=str(ls_status["url"]).rstrip("/"), backend_url=str(backends[0].get("url") or ""),
            projects=tuple(sorted({int(b["project"]) for b in backends if b.get("project") is not None})),
            title="", description="", interactive=False, timeout=self.settings.label_studio_timeout, token=token,
        )

    def _unwire(self, mlb: dict[str, Any], spec: Spec, ls_status: dict[str, Any]) -> dict[str, Any]:
        """spec.labelStudio was removed: delete the recorded registrations (the user removed the wiring).

        Uses the Label Studio URL and token Secret recorded in status. On failure the records stay in
        status and the timer retries with backoff (one Warning event per outage, not per attempt).
        """
        backends = ls_status.get("backends") or []
        if not backends:
            return {}
        key: Key = (spec.namespace, spec.name)
        ids = [b.get("id") for b in backends]
        try:
            target = self.status_target(spec.namespace, ls_status)
        except KeyError as exc:
            self.events(mlb, "Warning", "RegistrationsLeft",
                        f"spec.labelStudio was removed but {str(exc).strip(chr(39) + chr(34))}: Label Studio ML backends {ids} were not deleted")
            return {}
        if target is None:
            self.events(mlb, "Warning", "RegistrationsLeft",
                        f"spec.labelStudio was removed: Label Studio ML backends {ids} were not deleted "
                        "(status records no Label Studio URL/token Secret)")
            return {}
        if not self._retry_allowed(key):
            return ls_status
        outcome = registration.deregister(target, backends, self.ls_factory)
        if outcome.error:
            delay = self._note_failure(key)
            if self._retry[key][0] == 1:
                self.events(mlb, "Warning", "DeregistrationFailed",
                            f"spec.labelStudio was removed; deleting ML backends {ids}: {outcome.error} (retrying in {delay:.0f}s)")
            return ls_status
        self._retry.pop(key, None)
        for rid in outcome.removed:
            self.events(mlb, "Normal", "Deregistered", f"deleted Label Studio ML backend {rid}: spec.labelStudio was removed")
        return {}

    def finalize(self, mlb: dict[str, Any]) -> registration.Outcome | None:
        """Delete the Label Studio registrations of a resource being deleted (children go by garbage collection)."""
        spec = Spec(mlb)
        ls_status = ((mlb.get("status") or {}).get("labelStudio") or {})
        recorded = list(ls_status.get("backends") or [])
        if spec.label_studio is None:
            # removed from the spec and not yet deregistered (Label Studio was down): status knows where
            target = self.status_target(spec.namespace, ls_status)
            if target is None:
                return None
        else:
            target = self.target(spec)
        outcome = registration.deregister(target, recorded, self.ls_factory)
        if not outcome.error:
            for rid in outcome.removed:
                self.events(mlb, "Normal", "Deregistered", f"deleted Label Studio ML backend {rid}")
        return outcome
