#!/usr/bin/env python3
"""``lsml-operator`` with probes, for ``bench/operator.py --probe``: where its memory and its API time go.

Runs the operator's own ``main()`` in this process, after wrapping the two places every API request of
the operator passes through: ``Kube._call`` (the reconciler's requests, synchronous, on kopf's thread pool)
and kopf's ``api.request`` (watches, kopf's own patches, events). Each request is counted by
(verb, resource) with its wall time, so "API latency vs operator CPU" is read from the operator's side.

On SIGUSR1 it appends one JSON line to ``$LSML_BENCH_PROBE_DIR/probe.jsonl``: RSS, the request counts,
the object counts by type (``gc``), and, with ``LSML_BENCH_TRACEMALLOC=<frames>`` (1: by line, fast), the 25 largest
allocation sites of a tracemalloc snapshot (tracemalloc roughly doubles the memory and slows the process:
use it to find what holds memory, not for the headline figures).
"""

from __future__ import annotations

import collections
import gc
import json
import os
import re
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_requests: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])  # "VERB resource" -> [n, seconds]
_NAMESPACED = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([^/?]+)(?:/[^/?]+)?(?:/([^/?]+))?")


def _resource(url: str) -> str:
    """``https://h/apis/apps/v1/namespaces/x/deployments/y?q`` -> ``deployments``; a subresource is appended."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[-1] if "://" in url else url
    m = _NAMESPACED.match(path)
    if not m:
        return path.split("?", 1)[0]
    return m.group(1) + (f"/{m.group(2)}" if m.group(2) else "")


def _count(verb: str, path: str, seconds: float) -> None:
    if "watch=true" in path:
        verb = "WATCH"
    key = f"{verb} {_resource(path)}"
    with _lock:
        entry = _requests[key]
        entry[0] += 1
        entry[1] += seconds


def _wrap_kube() -> None:
    from lsml_operator.kube import Kube

    original = Kube._call

    def _call(self: Any, method: str, path: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, method, path, **kwargs)
        finally:
            _count(method, path, time.perf_counter() - started)

    Kube._call = _call  # type: ignore[method-assign]


def _wrap_kopf() -> None:
    from kopf._cogs.clients import api

    original = api.request

    async def request(method: str, url: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(method, url, **kwargs)
        finally:
            # a watch's time is how long the stream stayed open: counted, its seconds mean nothing
            _count(method, url, time.perf_counter() - started)

    api.request = request


def _rss_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def _dump(label: str) -> None:
    record: dict[str, Any] = {"label": label, "time": time.time(), **_rss_mb()}
    with _lock:
        record["requests"] = {k: [int(v[0]), round(v[1], 3)] for k, v in sorted(_requests.items())}
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    record["gc_objects"] = sum(counts.values())
    record["gc_top_types"] = counts.most_common(15)
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        record["traced_mb"], record["traced_peak_mb"] = round(current / 2**20, 1), round(peak / 2**20, 1)
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        frames = tracemalloc.get_traceback_limit()
        top = []
        # grouping by whole tracebacks is slow with millions of traces: one frame groups by line
        for stat in snap.statistics("lineno" if frames == 1 else "traceback")[:25]:
            where = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback][-6:]
            top.append({"mb": round(stat.size / 2**20, 2), "count": stat.count, "where": " < ".join(reversed(where))})
        record["tracemalloc_top"] = top
    with open(Path(os.environ["LSML_BENCH_PROBE_DIR"]) / "probe.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def main() -> int:
    frames = int(os.environ.get("LSML_BENCH_TRACEMALLOC") or 0)
    if frames:
        tracemalloc.start(frames)
    _wrap_kube()
    _wrap_kopf()
    label_file = Path(os.environ["LSML_BENCH_PROBE_DIR"]) / "label"

    def on_usr1(signum: int, frame: Any) -> None:
        label = label_file.read_text().strip() if label_file.exists() else "?"
        threading.Thread(target=_dump, args=(label,), daemon=True).start()

    signal.signal(signal.SIGUSR1, on_usr1)
    from lsml_operator.main import main as operator_main

    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
