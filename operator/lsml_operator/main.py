"""``lsml-operator``: the kopf process. Handlers here only translate kopf triggers into ``Reconciler`` calls.

- create/update/resume and a periodic timer call the same idempotent reconcile;
- watch events of Deployments/StatefulSets/Services/PVCs/HPAs/NetworkPolicies labelled
  ``app.kubernetes.io/managed-by=lsml-operator`` re-reconcile their owner, so a child
  deleted or edited by hand is restored at once and status follows rollouts;
- the same timer, every ``LSML_OPERATOR_QUALITY_SECONDS``, polls each available backend's own ``/versions`` for
  the served versions' scores (``Reconciler.poll_quality``: ``status.served``, the SCORE column, ``CandidateHeld``
  events) on the poll's own threads;
- a delete handler (kopf's finalizer) removes the Label Studio registrations first;
- peering (on by default, ``--standalone`` turns it off) makes a second replica stand by; its
  CRD and object are checked before kopf starts (``peering.py``: kopf would wait silently);
  the liveness endpoint is kopf's own (``/healthz`` on ``--liveness``).
kopf keeps its bookkeeping in ``lsml.dev/*`` annotations, never in status (the CRD's status
schema is structural, unknown fields would be pruned).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import random
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import prometheus_client
import urllib3

from . import GROUP, PLURAL, VERSION, jsonio
from . import peering as peering_check
from .builders.redis import redis_claim_name
from .diffbase import EssenceDiffBaseStorage
from .handoff import in_thread
from .keys import Key, key_of
from .kube import API_VERSIONS, PLURALS, APIError, Kube, new_api_client
from .memory import limit_malloc_arenas
from .reconcile import Reconciler, Trigger
from .reconcile.audit import CHILD_SELECTOR, CHILD_SELECTOR_STRING, WATCHED_KINDS
from .settings import OperatorSettings

log = logging.getLogger("lsml_operator")


def _resource(kind: str) -> tuple[str, str, str]:
    """kopf's (group, version, plural) of a child kind."""
    group, _, version = API_VERSIONS[kind].rpartition("/")
    return group, version, PLURALS[kind]


# the children's watches: every kind the reconciler trusts its cache for (the audit lists the same kinds)
CHILD_RESOURCES = [_resource(kind) for kind in WATCHED_KINDS]


def _reconciler(memo: Any) -> Reconciler:
    """The process' Reconciler, kept in kopf's memo (set by the startup handler before any watch starts;
    each object's memo is a shallow copy of the operator's, so all of them share this one)."""
    rec: Reconciler = memo.reconciler
    return rec


def _post_event(body: dict[str, Any], etype: str, reason: str, message: str) -> None:
    """Events on the MLBackend via kopf's poster (async queue); also logged. Never given a secret.

    kopf finds its poster through context variables: a thread that was handed work without them
    (``handoff.in_thread`` copies them) cannot post, and says so instead of dropping the Event silently."""
    try:
        # kopf reads only apiVersion/kind/metadata of the object; its annotation names its own Body class
        kopf.event(body, type=etype, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:
        log.warning(
            "Event %s not posted: no kopf context in this thread (handed off without handoff.in_thread?)", reason
        )
    except Exception as exc:  # noqa: BLE001 - e.g. the loop closed at shutdown: an Event is not worth failing a pass
        log.warning("Event %s not posted: %s", reason, exc)
    log.info(
        "%s/%s %s %s: %s",
        body.get("metadata", {}).get("namespace"),
        body.get("metadata", {}).get("name"),
        etype,
        reason,
        message,
    )


def _configure(settings: kopf.OperatorSettings, ops: OperatorSettings, peering: bool) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = EssenceDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.execution.max_workers = ops.max_workers
    # No cluster-wide namespace/CRD scanning: the resources are known, and a namespaced install has no
    # permission to list namespaces (kopf would retry that 403 for minutes before falling back).
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # handler log lines are not events; we post our own
    settings.watching.server_timeout = 300
    # children are listed and watched with the label selector on the API server: the operator never receives
    # (parses, keeps a kopf memory of) the namespace's other Deployments, Services, claims...
    children = {(group, plural) for group, _, plural in CHILD_RESOURCES}
    settings.watching.label_selectors[lambda r: (r.group, r.plural) in children] = CHILD_SELECTOR_STRING
    settings.peering.name = ops.peering_name
    settings.peering.mandatory = peering
    settings.peering.standalone = not peering
    settings.peering.stealth = True
    settings.networking.request_timeout = 60


def register_handlers(ops: OperatorSettings, peering: bool) -> None:
    """Declare the kopf handlers (module-level decorators would fire at import, before settings are known)."""

    @kopf.on.startup()
    def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        _configure(settings, ops, peering)
        memo.executor = settings.execution.executor  # kopf's pool of sync handlers: the async ones queue passes on it
        memo.reconciler = Reconciler(Kube(new_api_client(pool_size=ops.max_workers * 2)), ops, events=_post_event)
        memo.quality_pool = ThreadPoolExecutor(max_workers=max(1, ops.quality_workers), thread_name_prefix="quality")

    @kopf.on.cleanup()
    def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if "quality_pool" in memo:
            memo.quality_pool.shutdown(wait=False, cancel_futures=True)

    @kopf.on.login()
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.probe(id="reconciler")
    def probe(memo: kopf.Memo, **_: Any) -> bool:
        return "reconciler" in memo

    @kopf.on.create(GROUP, VERSION, PLURAL)
    def on_create(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        _reconciler(memo).reconcile(_plain(body), Trigger.CREATE)

    @kopf.on.update(GROUP, VERSION, PLURAL)
    def on_update(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        _reconciler(memo).reconcile(_plain(body), Trigger.UPDATE)

    @kopf.on.resume(GROUP, VERSION, PLURAL)
    def on_resume(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        _reconciler(memo).reconcile(_plain(body), Trigger.RESUME)

    tick = ops.timer_interval()

    # One timer per MLBackend for both jobs (a second one was a thousand more kopf tasks at 1,000 MLBackends).
    @kopf.timer(GROUP, VERSION, PLURAL, interval=tick, initial_delay=ops.timer_first_delay())
    async def on_timer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rec = _reconciler(memo)
        plain = dict(body)  # read only: no copy of the body on every tick
        due = rec.tick_due(plain)  # in the loop, on the key only: a tick with nothing due costs no thread
        if due is not None:
            await in_thread(memo.executor, rec.reconcile, _plain(body), due)
        # after the pass, never beside this tick's: both take the MLBackend's lock, and whichever found it taken would
        # skip; not awaited (QualityStep.begin says why)
        key = key_of(plain)
        if rec.quality.begin(key, tick):
            poll = in_thread(memo.quality_pool, rec.poll_quality, plain)
            poll.add_done_callback(functools.partial(_poll_ended, rec, key))

    @kopf.on.delete(GROUP, VERSION, PLURAL)
    def on_delete(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
        rec = _reconciler(memo)
        plain = _plain(body)
        key = key_of(plain)
        try:
            outcome = rec.finalize(plain)
        except KeyError as exc:  # token Secret gone: nothing we can do in Label Studio
            _post_event(plain, "Warning", "DeregistrationSkipped", f"{exc}: Label Studio registrations left in place")
            outcome = None
        if outcome is not None and outcome.error:
            if retry < ops.delete_retries:
                raise kopf.TemporaryError(
                    f"could not delete Label Studio registrations: {outcome.error}",
                    delay=min(ops.retry_base_seconds * 2**retry, ops.retry_max_seconds),
                )
            _post_event(
                plain,
                "Warning",
                "DeregistrationFailed",
                f"gave up after {retry} attempts: {outcome.error}; the Label Studio ML backends may remain",
            )
        if plain.get("spec", {}).get("redis", {}).get("managed"):
            # the Redis claim comes from a volumeClaimTemplate: no owner reference, so not garbage-collected
            rec.kube.delete_owned_or_labelled("PersistentVolumeClaim", key[0], redis_claim_name(key[1]), key[1])
        rec.forget(key)

    async def on_child(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        """Decided in the event loop, so kopf lets go of the event (and its body) at once: most child events change
        nothing we read, and the others ask for one pass of their MLBackend, queued on kopf's thread pool once
        however many events come in meanwhile (``Reconciler.request_pass``). Awaiting the pass here would keep
        every child's event, body and worker alive while a thousand MLBackends wait for the API server."""
        rec = _reconciler(memo)
        body = dict(event.get("object") or {})
        if event.get("type") != "DELETED":
            rec.observe_child(body)  # the cache the passes compare with (fingerprints), in the loop: no thread
        key = rec.child_event(event.get("type"), body)
        if key is None or not rec.request_pass(key):
            return
        future = in_thread(memo.executor, rec.run_requested_pass, key)
        future.add_done_callback(_log_failed_pass)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="parent-cache")
    async def on_parent(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        _reconciler(memo).observe_parent(event.get("type"), dict(event.get("object") or {}))

    for group, version, plural in CHILD_RESOURCES:
        kopf.on.event(group, version, plural, labels=CHILD_SELECTOR, id=f"child-{plural}")(on_child)


def _poll_ended(rec: Reconciler, key: Key, future: asyncio.Future[Any]) -> None:
    """A quality poll is over: the next may start; a failure is logged (a status write refused: the next poll tries
    again). The poll runs on its own threads: a backend that does not answer holds one of them for the backend
    timeout, never one of kopf's (a thousand unreachable backends held every reconcile thread for seconds)."""
    rec.quality.end(key)
    _log_failure(future, f"model quality of {key[0]}/{key[1]} not written")


def _log_failed_pass(future: asyncio.Future[Any]) -> None:
    """A child event's pass runs detached from kopf (nothing retries it: the next event or tick does)."""
    _log_failure(future, "a pass after a child event failed")


def _log_failure(future: asyncio.Future[Any], what: str) -> None:
    """Log the failure of work nobody awaits (else asyncio reports it only at garbage collection, without context);
    a cancelled future (the operator stopping) is no failure."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("%s: %s", what, getattr(exc, "reason", exc))


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A plain dict copy of kopf's live body (builders and status code take plain dicts).

    Through JSON, not ``copy.deepcopy``: the body came as JSON, and orjson's round trip copies it in a sixth of the
    time (every pass takes one)."""
    copied: dict[str, Any] = jsonio.loads(jsonio.dumps(dict(body)))
    return copied


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lsml-operator", description="Reconciles MLBackend resources (lsml.dev/v1alpha1).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); env LSML_OPERATOR_NAMESPACES=a,b",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch the whole cluster")
    p.add_argument(
        "--liveness",
        default=os.environ.get("LSML_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="kopf liveness endpoint URL (default %(default)s)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("LSML_OPERATOR_METRICS_PORT") or 0),
        help="serve the operator's Prometheus metrics on this port at /metrics (0: off; the chart sets 8081)",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no peering (one replica only); default: mandatory peering via KopfPeering/ClusterKopfPeering",
    )
    p.add_argument("--peering-name", default=None, help="peering object name (default lsml-operator)")
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; default: random per process. kopf pauses every operator that sees a "
        "peer of higher *or equal* priority, so replicas of one Deployment (same arguments) need "
        "distinct priorities: the highest live one works, the others stand by and take over "
        "when its peering record expires",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, kopf's per-object handler messages included"
    )
    return p.parse_args(argv)


def _peering_problem(clusterwide: bool, namespaces: list[str], name: str) -> str | None:
    """``peering.problem`` on a short-lived client; a check that cannot run (no permission to read the
    peering object, API unreachable) is logged and kopf starts anyway: kopf reports those itself."""
    api = new_api_client(pool_size=1)
    try:
        return peering_check.problem(Kube(api), clusterwide=clusterwide, namespaces=namespaces, name=name)
    except (APIError, OSError, urllib3.exceptions.HTTPError) as exc:
        log.warning("could not check the kopf peering %r before starting: %s", name, getattr(exc, "reason", exc))
        return None
    finally:
        api.close()


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()  # before any thread allocates (memory.py)
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # urllib3/kubernetes debug logs would print request headers (bearer tokens): keep them quiet.
    for noisy in ("urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.verbose:
        # kopf logs every handler/timer success at INFO: with hundreds of objects that is noise.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    ops = OperatorSettings.from_env()
    if args.peering_name:
        ops = OperatorSettings(**{**ops.__dict__, "peering_name": args.peering_name})
    namespaces = list(args.namespace)
    if not namespaces and not args.all_namespaces and os.environ.get("LSML_OPERATOR_NAMESPACES"):
        namespaces = [n.strip() for n in os.environ["LSML_OPERATOR_NAMESPACES"].split(",") if n.strip()]
    clusterwide = args.all_namespaces or not namespaces
    priority = args.priority if args.priority is not None else random.SystemRandom().randint(1, 2**31 - 1)
    if not args.standalone:
        missing = _peering_problem(clusterwide, namespaces, ops.peering_name)
        if missing:
            log.error("%s", missing)
            return 2
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port)  # its own thread; lsml_operator.metrics
        log.info("metrics on :%d/metrics", args.metrics_port)
    register_handlers(ops, peering=not args.standalone)
    log.info(
        "lsml-operator starting: %s, peering %s",
        "cluster-wide" if clusterwide else f"namespaces {namespaces}",
        "off" if args.standalone else f"{ops.peering_name} (priority {priority})",
    )
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=clusterwide,
                namespaces=namespaces,
                liveness_endpoint=args.liveness,
                standalone=args.standalone,
                peering_name=ops.peering_name,
                priority=priority,
            )
        )
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
