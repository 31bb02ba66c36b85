"""The control plane's ceiling for the operator's writes (``bench/operator.py --ceiling``).

Issue 21 part 2 asks whether, at 1,000 MLBackends, the 300 s until every child was applied is the
operator's or the control plane's. This answers it with a peer that has no operator in it: for the same
MLBackends, a bare client writes exactly what the operator's first pass writes (the managed Redis'
password Secret, created once, then every child of ``builders.desired_children`` by server-side apply),
rendered by the operator's own builders and sent through the operator's own ``Kube`` (the same
``kubernetes`` client, field manager, apply flags), one MLBackend per thread like kopf's workers. What
it takes is the most any operator built on that client could do on this control plane at that
concurrency. Nothing of the operator's own is in it: no watches, no cache, no status patches.

Beside ``bench/operator.py``, which imports it (a module named ``operator`` would shadow the standard
library's in anything that imported it back).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import histogram_buckets, percentiles  # noqa: E402  (beside this script)


@dataclass
class Request:
    """One request of the ceiling client: what it was and when, by this process's monotonic clock."""

    verb: str
    kind: str
    started: float
    ended: float
    error: str | None = None


def operator_kube(kubeconfig: Path, concurrency: int) -> Any:
    """The operator's ``Kube`` on a client configured as ``new_api_client`` does (pool of twice the workers),
    from an explicit kubeconfig: the bench's ServiceAccount, so the API server's FlowSchemas count it."""
    from kubernetes import client, config

    from lsml_operator.kube import Kube

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = concurrency * 2
    return Kube(client.ApiClient(cfg))


def _timed(out: list[Request], verb: str, kind: str, call: Callable[[], Any]) -> Any:
    """Run one request, appending its timing (and its error, if any: the ceiling goes on) to ``out``."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # an API refusal or a transport error: counted, the other writes still measured
        out.append(Request(verb, kind, started, time.monotonic(), f"{type(exc).__name__}: {str(exc)[:200]}"))
        return None
    out.append(Request(verb, kind, started, time.monotonic()))
    return result


def backend_writes(kube: Any, mlb: dict[str, Any], *, owner_reads: bool = False) -> list[Request]:
    """The first pass's writes for one MLBackend, in the operator's order (``ChildrenStep.run``).

    ``owner_reads`` adds the GET the operator makes before the first write of each child and of the
    Secret (``_check_owner``, ``_redis_auth``): 404s on a fresh namespace, but requests all the same."""
    from lsml_operator.builders import Spec, desired_children
    from lsml_operator.builders import redis as redis_builder

    out: list[Request] = []
    auth_version = ""
    if Spec(mlb).redis_managed:
        secret = redis_builder.build_auth_secret(mlb, redis_builder.new_password())
        meta = secret["metadata"]
        if owner_reads:
            _timed(out, "GET", "Secret", lambda: kube.get("Secret", meta["namespace"], meta["name"]))
        got = _timed(out, "POST", "Secret", lambda: kube.create_or_get(secret))
        auth_version = str(got[0]["metadata"].get("resourceVersion", "")) if got else ""
    for child in desired_children(mlb, redis_auth_version=auth_version):
        kind, meta = child["kind"], child["metadata"]
        if owner_reads:
            _timed(out, "GET", kind, lambda k=kind, m=meta: kube.get(k, m["namespace"], m["name"]))
        _timed(out, "PATCH", kind, lambda c=child: kube.apply(c))
    return out


def apply_all(kube: Any, mlbs: list[dict[str, Any]], concurrency: int, *, owner_reads: bool = False) -> list[Request]:
    """Every MLBackend's writes, ``concurrency`` MLBackends at once (kopf's ``max_workers`` threads)."""
    lock = threading.Lock()
    requests: list[Request] = []

    def one(mlb: dict[str, Any]) -> None:
        got = backend_writes(kube, mlb, owner_reads=owner_reads)
        with lock:
            requests.extend(got)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="ceiling") as pool:
        list(pool.map(one, mlbs))
    return requests


def _latency(requests: list[Request]) -> dict[str, Any]:
    got = percentiles([r.ended - r.started for r in requests])
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in got.items()}


def summarize(requests: list[Request]) -> dict[str, Any]:
    """Seconds from the first write sent to the last answered, writes per second, client-side latency
    (overall and by verb and kind) and the errors, if any."""
    writes = [r for r in requests if r.verb != "GET"]
    if not writes:
        return {"writes": 0}
    first = min(r.started for r in requests)
    seconds = max(r.ended for r in writes) - first
    by: dict[str, list[Request]] = {}
    for r in requests:
        by.setdefault(f"{r.verb} {r.kind}", []).append(r)
    errors = [r for r in requests if r.error]
    return {
        "first_to_last_write_seconds": round(seconds, 2),
        "writes": len(writes),
        "reads": len(requests) - len(writes),
        "writes_per_second": round(len(writes) / seconds, 1) if seconds > 0 else None,
        "write_latency_client": _latency(writes),
        "latency_client_by_request": {k: _latency(v) for k, v in sorted(by.items())},
        "errors": len(errors),
        "first_errors": sorted({r.error for r in errors if r.error})[:5],
    }


def histogram_quantile(after: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """The q-quantile of the observations between two snapshots of a histogram, interpolated linearly within
    its bucket as Prometheus' ``histogram_quantile`` does: only as fine as the API server's buckets."""
    buckets = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    low, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return low  # beyond the last finite bucket: its bound is all that is known
            return low + (le - low) * (rank - below) / (count - below) if count > below else le
        low, below = le, count
    return None


def server_latency(after_text: str, before_text: str, flow_schema: str) -> dict[str, float | None]:
    """p50/p99 in ms of the API server's execution time and of its queueing (API Priority and Fairness wait)
    for one FlowSchema's requests between two /metrics texts: the same figure for the operator and the
    ceiling client, who authenticate as the same ServiceAccount."""
    out: dict[str, float | None] = {}
    for name, metric in (
        ("execution", "apiserver_flowcontrol_request_execution_seconds"),
        ("wait", "apiserver_flowcontrol_request_wait_duration_seconds"),
    ):
        label = f'flow_schema="{flow_schema}"'
        after, before = histogram_buckets(after_text, metric, label), histogram_buckets(before_text, metric, label)
        for q in (0.5, 0.99):
            v = histogram_quantile(after, before, q)
            out[f"{name}_p{int(q * 100)}_ms"] = round(v * 1e3, 1) if v is not None else None
    return out


def _when(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def created_at(bodies: list[dict[str, Any]]) -> list[float]:
    """creationTimestamp of each object, in seconds (the API server's clock, as in ``creation_times``)."""
    return [_when(b["metadata"]["creationTimestamp"]) for b in bodies]


def creation_times(api: Any, namespace: str, kinds: dict[str, tuple[str, str]]) -> list[float]:
    """creationTimestamp (server clock, whole seconds) of every object an MLBackend controls, from one LIST of
    metadata per kind: the first apply of each child, whoever applied it. Controlled, not labelled: the Redis
    StatefulSet's own claims carry our labels but no owner."""
    times = []
    for api_version, plural in kinds.values():
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        resp = api.call_api(
            *api.param_serialize(
                method="GET",
                resource_path=f"{base}/namespaces/{namespace}/{plural}",
                header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
                auth_settings=["BearerToken"],
            )
        )
        resp.read()
        for item in json.loads(resp.data).get("items") or []:
            meta = item["metadata"]
            if any(r.get("kind") == "MLBackend" and r.get("controller") for r in meta.get("ownerReferences") or []):
                times.append(_when(meta["creationTimestamp"]))
    return times


def creation_span(child_times: list[float], mlbackend_times: list[float]) -> dict[str, Any]:
    """From the children's creation times: how many, first to last, and the last after the last MLBackend's
    create (the bench's headline, here by the API server's clock instead of a 1 s poll)."""
    if not child_times:
        return {"children": 0}
    return {
        "children": len(child_times),
        "first_to_last_child_created_seconds": max(child_times) - min(child_times),
        "last_child_after_last_mlbackend_created_seconds": max(child_times) - max(mlbackend_times)
        if mlbackend_times
        else None,
    }
