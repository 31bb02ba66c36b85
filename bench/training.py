"""Training benchmark: webhook bursts against the real production stack (gunicorn + RQ worker + Redis).

What it measures (targets from issue 3):
1. A burst of N annotation webhooks for one project in T seconds (default
   1,000 in 10 s) while a training is running: the p50/p99/max answer time of
   /webhook (target p99 < 100 ms) and the number of trainings the burst caused
   (target: at most 2 beyond the one running when the burst began).
2. Hot reload: the time from the end of `fit` (the model writes a timestamp
   as its last act) until every server replica answers with the new version
   on `CONSECUTIVE` fresh connections in a row (target < 2 s), repeated.

Everything runs on this machine: a private redis-server (free port, temp
dir, AOF on), `SERVERS` gunicorn replicas with 2 workers each, one
`label-studio-ml worker`. The load generator shares the CPU with them.

    .venv/bin/python bench/training.py [--webhooks 1000] [--seconds 10] [--reloads 5]

Writes bench/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import histogram_buckets  # noqa: E402  (beside this script)
from tests.fixtures.apps import TEXT_CONFIG  # noqa: E402
from tests.fixtures.polling import wait_for  # noqa: E402
from tests.fixtures.ports import free_port, wait_for_port  # noqa: E402
from tests.fixtures.rq_procs import Procs, fit_log, start_server, write_backend  # noqa: E402

PROJECT = {"id": 1, "title": "bench", "label_config": TEXT_CONFIG}
TASK = {"id": 1, "data": {"text": "a labelled sentence"}}
CONSECUTIVE = 10
CLIENT_THREADS = 16  # per replica
SERVERS = 2


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    port = free_port()
    data = tmp / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ],
        stdout=open(data / "redis.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, timeout=20)
    return proc, f"redis://127.0.0.1:{port}/0"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def webhook_buckets(url: str) -> dict[float, float]:
    """The server's cumulative /webhook latency histogram (`le` bound -> count), summed over its processes."""
    text = requests.get(url + "/metrics", timeout=10).text
    return histogram_buckets(text, "lsml_http_request_duration_seconds", 'route="/webhook"')


def server_side_p99(before: list[dict[float, float]], after: list[dict[float, float]]) -> dict[str, object]:
    """What the servers themselves timed for the burst's webhooks: the bucket bound under which 99% fell.

    Set beside the client's p99, it says where a tail is: in the server (the request's own work, the GIL of a
    process that also loads a version), or outside it (the load generator and the scheduler on shared cores).
    """
    delta: dict[float, float] = {}
    for b, a in zip(before, after, strict=True):
        for bound, count in a.items():
            delta[bound] = delta.get(bound, 0.0) + count - b.get(bound, 0.0)
    total = delta.get(float("inf"), 0.0)
    bounds = sorted(delta)
    p99 = next((bound for bound in bounds if total and delta[bound] >= 0.99 * total), None)
    p50 = next((bound for bound in bounds if total and delta[bound] >= 0.5 * total), None)
    return {
        "server_timed_webhooks": int(total),
        "server_p50_at_most_ms": None if p50 is None else p50 * 1000,
        "server_p99_at_most_ms": None if p99 is None else p99 * 1000,
    }


def burst(url: str, count: int, seconds: float, reuse: bool = False) -> list[float]:
    """`count` ANNOTATION_CREATED webhooks spread evenly over `seconds`; returns answer times (s).

    Each on a connection of its own, as Label Studio sends them (one `requests.post` per webhook); `reuse`:
    one kept-alive connection per client thread instead, warmed before the burst begins.
    """
    local = threading.local()
    latencies: list[float] = []
    errors: list[str] = []

    def warm(_: int) -> None:
        local.session = requests.Session()
        local.session.get(url + "/health", timeout=10)
        time.sleep(0.1)  # every pool thread gets one of these calls: each warms its own connection

    def one(i: int) -> None:
        if reuse and not hasattr(local, "session"):  # a thread that took no warm-up call
            local.session = requests.Session()
        session = local.session if reuse else requests
        delay = t0 + i * seconds / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = {
            "action": "ANNOTATION_CREATED",
            "project": PROJECT,
            "task": TASK,
            "annotation": {
                "id": i,
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}
                ],
            },
        }
        started = time.perf_counter()
        r = session.post(url + "/webhook", json=body, timeout=10)
        latencies.append(time.perf_counter() - started)
        if r.status_code not in (200, 201):
            errors.append(f"{r.status_code} {r.text[:200]}")

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        if reuse:
            list(pool.map(warm, range(CLIENT_THREADS)))
        t0 = time.monotonic() + 0.2
        list(pool.map(one, range(count)))
    if errors:
        raise SystemExit(f"{len(errors)} webhooks failed, e.g. {errors[0]}")
    return latencies


def version_of(url: str) -> str:
    r = requests.post(
        url + "/predict",
        json={"tasks": [TASK], "project": "1", "label_config": TEXT_CONFIG},
        timeout=5,
        headers={"Connection": "close"},
    )
    r.raise_for_status()
    return r.json()["results"][0]["model_version"]


def reload_latency(servers: list[str], log: Path, job_url: str, expected: str) -> float:
    """Trigger a training; seconds from fit's end to every replica answering `expected` CONSECUTIVE times."""
    ends_before = len([f for f in fit_log(log) if f["at"] == "end"])
    requests.post(job_url + "/webhook", json={"action": "START_TRAINING", "project": PROJECT}, timeout=5)
    fit_end = wait_for(
        lambda: ([f["t"] for f in fit_log(log) if f["at"] == "end"][ends_before:] or [None])[0],
        120,
        interval=0.01,
        what="fit to end",
    )
    streak = {u: 0 for u in servers}
    streak_start = {u: 0.0 for u in servers}
    while min(streak.values()) < CONSECUTIVE:
        for u in servers:
            asked = time.time()
            if version_of(u) == expected:
                if streak[u] == 0:
                    streak_start[u] = asked
                streak[u] += 1
            else:
                streak[u] = 0
        if time.time() - fit_end > 30:
            raise SystemExit(f"replicas still not on {expected} 30 s after fit ended")
    # from the first request of the final all-new streak on, every replica served `expected`
    return max(streak_start.values()) - fit_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fit-seconds", type=float, default=3.0, help="duration of each fit (sleep)")
    parser.add_argument(
        "--fit-burn",
        type=int,
        default=0,
        help="cores a fit keeps busy (0: the fit sleeps); a CPU-bound fit competes with the servers as a real one does",
    )
    parser.add_argument(
        "--training-nice", type=int, default=None, help="LSML_TRAINING_NICE for the worker (default: lsml's)"
    )
    parser.add_argument(
        "--client-in-one-process",
        action="store_true",
        help="send every replica's webhooks from threads of this process (the load generator before 2026-12-05)",
    )
    parser.add_argument(
        "--reuse-connections",
        action="store_true",
        help="kept-alive client connections, warmed first (default: a new one per webhook, as Label Studio sends)",
    )
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "training.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lsml-bench-training-"))
    procs = Procs(tmp)
    redis_proc, redis_url = start_redis(tmp)
    try:
        backend = write_backend(tmp / "backend")
        log = tmp / "fits.jsonl"
        extra = {
            "TEST_FIT_LOG": str(log),
            "TEST_FIT_SECONDS": str(args.fit_seconds),
            "LOG_LEVEL": "WARNING",
            "LSML_RELOAD_INTERVAL": "0.5",  # the default: how often each process checks `current`
        }
        if args.fit_burn:
            extra["TEST_FIT_BURN"] = str(args.fit_burn)
        worker_extra = dict(extra)
        if args.training_nice is not None:
            worker_extra["LSML_TRAINING_NICE"] = str(args.training_nice)
        metric_dirs = [tmp / f"metrics{i}" for i in range(SERVERS)]  # one /metrics over each server's processes,
        for d in metric_dirs:  # as `label-studio-ml start` and the image set it
            d.mkdir()
        servers = [
            start_server(
                procs, backend, redis_url, name=f"server{i}", workers=2, PROMETHEUS_MULTIPROC_DIR=str(d), **extra
            )
            for i, d in enumerate(metric_dirs)
        ]
        procs.worker(backend, redis_url, name="worker", **worker_extra)
        for u in servers:
            version_of(u)  # warm

        # 1. burst while a training runs
        requests.post(servers[0] + "/webhook", json={"action": "START_TRAINING", "project": PROJECT}, timeout=5)
        wait_for(lambda: fit_log(log), 30, interval=0.01, what="the first fit to start")
        histograms_before = [webhook_buckets(u) for u in servers]
        burst_started = time.time()
        latencies = []
        # One load-generating process per replica (--client-in-one-process: threads of this process, as before
        # 2026-12-05): 32 client threads in one interpreter wait for its GIL, and that wait lands in the latency.
        pool_class = ThreadPoolExecutor if args.client_in_one_process else ProcessPoolExecutor
        with pool_class(max_workers=SERVERS) as pool:
            counts, seconds = [args.webhooks // SERVERS] * SERVERS, [args.seconds] * SERVERS
            for part in pool.map(burst, servers, counts, seconds, [args.reuse_connections] * SERVERS):
                latencies.extend(part)
        burst_ended = time.time()
        server_side = server_side_p99(histograms_before, [webhook_buckets(u) for u in servers])

        def idle() -> bool:
            fits = fit_log(log)
            return (
                len([f for f in fits if f["at"] == "start"]) == len([f for f in fits if f["at"] == "end"])
                and time.time() - max(f["t"] for f in fits) > 2 * args.fit_seconds + 1
            )

        wait_for(idle, 600, interval=0.2, what="the queue to drain")
        fits = fit_log(log)
        trainings_after_burst_start = len([f for f in fits if f["at"] == "start" and f["t"] > burst_started])
        versions_after_burst = len([f for f in fits if f["at"] == "end"])

        # 2. hot reload across replicas
        reloads = []
        for n in range(args.reloads):
            expected = f"v{versions_after_burst + n + 1}"
            reloads.append(reload_latency(servers, log, servers[n % SERVERS], expected))

        result = {
            "command": " ".join(["bench/training.py"] + sys.argv[1:]),
            "webhooks": len(latencies),
            "burst_seconds": round(burst_ended - burst_started, 2),
            "webhook_p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "webhook_p99_ms": round(percentile(latencies, 99) * 1000, 1),
            "webhook_max_ms": round(max(latencies) * 1000, 1),
            **server_side,
            "trainings_started_after_burst_began": trainings_after_burst_start,
            "fit_seconds": args.fit_seconds,
            "fit_burn_cores": args.fit_burn,
            "connections": "kept alive, warmed" if args.reuse_connections else "one per webhook (as Label Studio)",
            "client": "threads of one process" if args.client_in_one_process else "one process per replica",
            "training_nice": args.training_nice if args.training_nice is not None else "default (10)",
            "load_average_at_end": round(__import__("os").getloadavg()[0], 2),
            "reload_seconds": [round(r, 3) for r in reloads],
            "reload_median_s": round(statistics.median(reloads), 3),
            "reload_max_s": round(max(reloads), 3),
            "reload_interval_s": 0.5,
            "servers": SERVERS,
            "gunicorn_workers_per_server": 2,
            "rq_workers": 1,
            "cpus": __import__("os").cpu_count(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        procs.stop_all()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
