"""/predict latency and throughput: lsml vs. legacy label-studio-ml 1.0.9 vs. raw predict.

Why this shape:
- One model, three ways, in one run on one machine: the same pickled
  TF-IDF + logistic regression pipeline (`backends/textmodel.py`) is timed
  in-process ("raw"), behind lsml (`label-studio-ml start`, its default
  workers/threads) and behind the legacy package from PyPI (its generated
  backend under the gunicorn command of its generated Dockerfile). The raw
  figure is what a perfect server would add nothing to, and the legacy package
  is the peer the targets are stated against. Two more peers make the
  comparison robust to a busy machine: predict() timed inside each server on
  the very requests wrk times, and each server again with a no-op model (the
  HTTP path alone).
- Rounds are interleaved (raw, then each server, alternating which goes
  first) and each figure reported is the median over rounds, because this
  machine is shared and other people's builds come and go.
- Load comes from `wrk` (C, one thread, persistent connections), so the
  generator stays cheap; it still shares the 2 cores with the server.
- /health and /setup are hammered (Python threads, persistent connections)
  while a model whose setup() sleeps 5 s is loading, for both servers.

Usage: .venv/bin/python bench/predict.py [--rounds 3] [--seconds 3]   (about 4.5 minutes)
Writes bench/results/predict.json and bench/results/predict.md (the table).
Needs `wrk` (apt-get install wrk) and the legacy venv (bench/setup_legacy.sh,
run by this script).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BACKENDS = BENCH / "backends"
RESULTS = BENCH / "results"
sys.path.insert(0, str(BACKENDS))

import textmodel  # noqa: E402

from harness import loadavg, machine, percentiles, proc_stats, process_tree, socket_inodes  # noqa: E402

BATCHES = (1, 100)
CONCURRENCY = (1, 8)
SERVERS = ("lsml", "legacy")
NOOP = ("lsml no-op", "legacy no-op")  # same servers, a model that does nothing: the HTTP path alone (c=1)

# wrk script: POST one JSON body over and over; write wrk's own figures as JSON when done.
WRK_LUA = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
  out:close()
end
"""


# ---- small helpers ---------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_cpu_seconds(root: int) -> float:
    """User+system CPU seconds used so far by the live processes of a server (its whole process tree)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = proc_stats()
    return sum(int(stats[p][11]) + int(stats[p][12]) for p in process_tree(root, stats) if p in stats) / tick


def connection_split(root: int, port: int) -> list[int]:
    """Established connections to `port` held by each process of the server's tree, largest first (zeros left out)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
                established.add(fields[9])  # inode
    counts = []
    for pid in process_tree(root):
        inodes = socket_inodes(pid)
        if inodes & established:
            counts.append(len(inodes & established))
    return sorted(counts, reverse=True)


class Client:
    """One persistent HTTP/1.1 connection to 127.0.0.1 (reconnects if the server closed it)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post_json(self, path: str, payload: Any) -> tuple[int, Any]:
        status, raw = self.request("POST", path, json.dumps(payload).encode())
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


class Server:
    """A server process group we started, stopped by its own pgid when the run ends."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict, port: int, log: Path):
        self.name, self.port, self.log = name, port, log
        self.cmd = cmd
        self.timings = Path(env["BENCH_TIMINGS_DIR"]) if env.get("BENCH_TIMINGS_DIR") else None
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_healthy(self, timeout: float = 60.0, path: str = "/health", times: int = 1) -> float:
        """Seconds until GET `path` answers 200 `times` times in a row (fresh connections, so
        that with several gunicorn workers each is likely to have answered)."""
        start = time.monotonic()
        ok = 0
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; log: {self.log}\n" + self.log.read_text()[-3000:]
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", path)
                ok = ok + 1 if conn.getresponse().status == 200 else 0
                conn.close()
                if ok >= times:
                    return time.monotonic() - start
            except OSError:
                ok = 0
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout}s; log: {self.log}")

    def banner(self) -> str:
        """What the server printed about itself (lsml: workers x threads, training mode)."""
        lines = [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if line.startswith("serving ") or "Using worker" in line or "Booting worker" in line
        ]
        return "\n".join(lines[:6])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


# ---- the two servers -------------------------------------------------------------
def timings_dir(work: Path, name: str) -> Path:
    """Where a server's model appends its own predict() durations (see textmodel._record)."""
    path = work / f"timings-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def timings_mark(path: Path | None) -> dict[Path, int]:
    """Current size of every timings file: read_timings() returns what comes after."""
    return {f: f.stat().st_size for f in path.glob("*.*")} if path else {}


def read_timings(path: Path | None, mark: dict[Path, int], kind: str = "bin") -> list[float]:
    """predict() durations (seconds; `kind` "cpu": their thread CPU time) the server's processes recorded since `mark`."""
    out: list[float] = []
    for f in path.glob(f"*.{kind}") if path else ():
        data = f.read_bytes()[mark.get(f, 0) :]
        out += [d for (d,) in struct.iter_unpack("d", data[: len(data) // 8 * 8])]
    return out


def legacy_python() -> Path:
    """The legacy venv's python (created by setup_legacy.sh if missing; idempotent)."""
    out = subprocess.run(["bash", str(BENCH / "setup_legacy.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def start_legacy(work: Path, model_class: str, model_path: Path, legacy_py: Path, extra_env: dict) -> Server:
    """1.0.9's own way: `label-studio-ml init --script`, then its Dockerfile's gunicorn command."""
    bindir = legacy_py.parent
    backend = work / f"legacy-{model_class}"
    subprocess.run(
        [
            str(bindir / "label-studio-ml"),
            "init",
            str(backend),
            "--force",
            "--script",
            f"{BACKENDS / 'legacy_text.py'}:{model_class}",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    env = {
        **os.environ,
        **extra_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BACKENDS), extra_env.get("PYTHONPATH")])),
        "BENCH_MODEL_PATH": str(model_path),
        "MODEL_DIR": str(work / f"legacy-{model_class}-models"),
        "BENCH_TIMINGS_DIR": str(timings_dir(work, f"legacy-{model_class}")),
    }
    # CMD of the Dockerfile 1.0.9 generates: gunicorn --preload --bind :$PORT --workers 1 --threads 8 --timeout 0
    cmd = [
        str(bindir / "gunicorn"),
        "--preload",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "8",
        "--timeout",
        "0",
        "_wsgi:app",
    ]
    return Server(f"legacy:{model_class}", cmd, backend, env, port, work / f"legacy-{model_class}.log")


def start_lsml(
    work: Path, model_class: str, model_path: Path, extra_env: dict, prefix: list[str] | None = None
) -> Server:
    """lsml's own way: `label-studio-ml init --script`, then `label-studio-ml start` with its defaults.

    `prefix` goes before the command (`taskset -c 1`: the server and everything it starts on those CPUs).

    Defaults (read from its banner into the results): with redis-server on
    PATH, 2 gunicorn gthread workers x 8 threads, plus a private Redis and an
    RQ worker; without, 1 worker x 8 threads.
    """
    bindir = Path(sys.executable).parent
    backend = work / f"lsml-{model_class}"
    subprocess.run(
        [
            str(bindir / "label-studio-ml"),
            "init",
            str(backend),
            "--force",
            "--script",
            f"{BACKENDS / 'lsml_text.py'}:{model_class}",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    env = {
        **os.environ,
        **extra_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BACKENDS), extra_env.get("PYTHONPATH")])),
        "BENCH_MODEL_PATH": str(model_path),
        "BENCH_TIMINGS_DIR": str(timings_dir(work, f"lsml-{model_class}")),
    }
    cmd = [
        *(prefix or []),
        str(bindir / "label-studio-ml"),
        "start",
        str(backend),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Server(f"lsml:{model_class}", cmd, backend, env, port, work / f"lsml-{model_class}.log")


# ---- measurements ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _raw_model(model_path: str) -> Any:
    """lsml's TextClassifier built in this process (what the servers run), built once."""
    os.environ["BENCH_MODEL_PATH"] = model_path
    os.environ.setdefault("MODEL_DIR", str(Path(model_path).parent / "raw-models"))
    from lsml_text import TextClassifier

    return TextClassifier(project_id="1", label_config=textmodel.LABEL_CONFIG)


def raw_predict(model_path: Path, batch: int, seconds: float) -> dict:
    """The model's own predict(), in this process, one call at a time: the floor HTTP adds to."""
    model = _raw_model(str(model_path))
    tasks = textmodel.make_tasks(batch)
    for _ in range(20):
        model.predict(tasks)
    samples: list[float] = []
    cpu0 = time.process_time()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        model.predict(tasks)
        samples.append(time.perf_counter() - t)
    out = percentiles(samples)
    out["rps"] = len(samples) / sum(samples)
    out["cpu_ms_per_call"] = 1e3 * (time.process_time() - cpu0) / len(samples)
    return out


def run_wrk(
    server: Server, body_file: Path, concurrency: int, seconds: float, work: Path, cpus: str | None = None
) -> dict:
    """Closed-loop load from wrk: `concurrency` persistent connections on one wrk thread (on `cpus`, if given).

    Also reports the CPU the server's processes and wrk itself burnt, in
    cores (CPU seconds / wall seconds), and the server's CPU per request:
    the figure that bounds throughput on 2 cores whatever the noise.
    """
    port = server.port
    lua = work / "post.lua"
    if not lua.exists():
        lua.write_text(WRK_LUA)
    out = work / f"wrk-{port}-{concurrency}.json"
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_OUT": str(out)}
    cpu0, wrk0 = group_cpu_seconds(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    mark = timings_mark(server.timings)
    wrk = subprocess.Popen(
        [
            *(["taskset", "-c", cpus] if cpus else []),
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}/predict",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(min(0.5, seconds / 2))
    split = connection_split(server.proc.pid, port)  # which server process holds wrk's connections
    if wrk.wait() != 0:
        raise RuntimeError(f"wrk failed: {wrk.stderr.read().decode()}")
    wrk.stderr.close()
    cpu = group_cpu_seconds(server.proc.pid) - cpu0
    inside = percentiles(read_timings(server.timings, mark))
    inside_cpu = read_timings(server.timings, mark, "cpu")
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (wrk1.ru_utime + wrk1.ru_stime) - (wrk0.ru_utime + wrk0.ru_stime)
    r = json.loads(out.read_text())
    out.unlink()
    wall = r["duration_us"] / 1e6
    return {
        "rps": r["requests"] / wall,
        "p50_ms": r["p50_us"] / 1e3,
        "p95_ms": r["p95_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "max_ms": r["max_us"] / 1e3,
        "requests": r["requests"],
        "errors": r["errors"],
        "non_2xx": r["non_2xx"],
        "server_cores": cpu / wall,
        "server_cpu_ms_per_req": 1e3 * cpu / max(1, r["requests"]),
        "wrk_cores": wrk_cpu / wall,
        "model_p50_ms": inside.get("p50_ms"),
        "model_calls": inside["count"],
        "model_cpu_ms_per_call": 1e3 * sum(inside_cpu) / len(inside_cpu) if inside_cpu else None,
        "connection_split": split,
    }


def check_same_predictions(ports: dict[str, int], model_path: Path) -> None:
    """Refuse to benchmark servers whose answers differ from the raw model's."""
    tasks = textmodel.make_tasks(100)
    expected = textmodel.predict_results(textmodel.load(model_path), tasks, "bench")
    for name, port in ports.items():
        client = Client(port)
        status, body = client.post_json("/predict", textmodel.predict_body(tasks))
        client.close()
        got = body.get("results") if isinstance(body, dict) else None
        if status != 200 or got is None:
            raise RuntimeError(f"{name} /predict answered {status}: {str(body)[:500]}")
        flat = [p[0] if isinstance(p, list) else p for p in got]
        same = len(flat) == len(expected) and all(
            a["result"] == b["result"] and abs(a["score"] - b["score"]) < 1e-9
            for a, b in zip(flat, expected, strict=True)
        )
        if not same:
            raise RuntimeError(f"{name} predictions differ from the raw model's: {str(got[:2])[:500]}")


def hammer_while_loading(server: Server, seconds_cap: float = 20.0) -> dict:
    """/health and /setup latency while the slow model loads, until /predict first succeeds.

    Two threads loop on GET /health, two on POST /setup (the Label Studio
    pair that must answer within 1 s and 3 s); one more POSTs /predict until it
    gets 200, which marks the end of loading. Only requests *sent* before that
    moment count.
    """
    setup = textmodel.setup_body()
    body1 = textmodel.predict_body(textmodel.make_tasks(1))
    t0 = time.monotonic()
    stop_at = t0 + seconds_cap
    ready: list[float] = []
    samples: dict[str, list[tuple[float, float, int]]] = {"health": [], "setup": []}

    def loop(kind: str, call: Callable[[Client], int]) -> None:
        client = Client(server.port, timeout=seconds_cap)
        while time.monotonic() < stop_at and not (ready and time.monotonic() > ready[0] + 0.5):
            sent = time.monotonic()
            try:
                status = call(client)
            except OSError:
                status = -1
            samples[kind].append((sent - t0, time.monotonic() - sent, status))
        client.close()

    def until_ready() -> None:
        client = Client(server.port, timeout=seconds_cap)
        while time.monotonic() < stop_at:
            try:
                status, _ = client.post_json("/predict", body1)
            except OSError:
                status = -1
            if status == 200:
                ready.append(time.monotonic())
                break
            time.sleep(0.05)
        client.close()

    threads = [threading.Thread(target=until_ready)]
    threads += [
        threading.Thread(target=loop, args=("health", lambda c: c.request("GET", "/health")[0])) for _ in range(2)
    ]
    threads += [
        threading.Thread(target=loop, args=("setup", lambda c: c.post_json("/setup", setup)[0])) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds_cap + 20)
    loaded_after = (ready[0] - t0) if ready else None
    window = loaded_after if loaded_after is not None else seconds_cap
    out: dict[str, Any] = {"loaded_after_s": loaded_after}
    for kind, rows in samples.items():
        inside = [r for r in rows if r[0] < window]
        out[kind] = percentiles([r[1] for r in inside])
        out[kind]["statuses"] = sorted({r[2] for r in inside})
    return out


# ---- report ----------------------------------------------------------------------
def median_cells(rounds: list[dict]) -> dict:
    """Per server/batch/concurrency (and raw per batch): the median of each figure over rounds."""
    out: dict[str, dict] = {}
    keys = rounds[0]["cells"].keys()
    for key in keys:
        cells = [r["cells"][key] for r in rounds]
        figures = [
            f
            for f in (
                "rps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "server_cores",
                "server_cpu_ms_per_req",
                "wrk_cores",
                "model_p50_ms",
            )
            if cells[0].get(f) is not None
        ]
        out[key] = {f: statistics.median(c[f] for c in cells) for f in figures}
        out[key]["errors"] = sum(c.get("errors", 0) + c.get("non_2xx", 0) for c in cells)
    for batch in BATCHES:  # raw, for the table: all raw timings of that batch size
        raws = [r["cells"][f"raw b{batch} before {name}"] for r in rounds for name in SERVERS]
        out[f"raw b{batch}"] = {
            f: statistics.median(c[f] for c in raws) for f in ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_call")
        }
    return out


def paired(rounds: list[dict]) -> dict:
    """Figures compared within a round; the median over rounds, and every round's value (noise shows)."""
    out: dict[str, Any] = {}

    def put(key: str, values: list[float]) -> None:
        out[key] = statistics.median(values)
        out[key + " per round"] = [round(v, 3) for v in values]

    for batch in BATCHES:
        for name in SERVERS:
            put(
                f"{name} overhead_vs_inside_p50_ms b{batch}",
                [
                    r["cells"][f"{name} b{batch} c1"]["p50_ms"] - r["cells"][f"{name} b{batch} c1"]["model_p50_ms"]
                    for r in rounds
                ],
            )
            put(
                f"{name} overhead_p50_ms b{batch}",
                [
                    r["cells"][f"{name} b{batch} c1"]["p50_ms"] - r["cells"][f"raw b{batch} before {name}"]["p50_ms"]
                    for r in rounds
                ],
            )
        for conc in CONCURRENCY:
            put(
                f"rps_ratio b{batch} c{conc}",
                [
                    r["cells"][f"lsml b{batch} c{conc}"]["rps"] / r["cells"][f"legacy b{batch} c{conc}"]["rps"]
                    for r in rounds
                ],
            )
    put(
        "b100 c8 share of cores x raw",
        [
            r["cells"]["lsml b100 c8"]["rps"] / ((os.cpu_count() or 1) * r["cells"]["raw b100 before lsml"]["rps"])
            for r in rounds
        ],
    )
    return out


def targets(pairs: dict, summary: dict, loading: dict, rounds: list[dict]) -> list[dict]:
    """Issue 13's targets, each with the measured figure (paired within rounds) and met / not met."""
    rows = []
    inside = pairs["lsml overhead_vs_inside_p50_ms b1"]
    rows.append(
        {
            "target": "lsml HTTP p50 - predict() p50 inside the server, batch 1, concurrency 1 <= 0.5 ms",
            "measured": f"{inside:+.2f} ms (rounds "
            + ", ".join(f"{v:+.2f}" for v in pairs["lsml overhead_vs_inside_p50_ms b1 per round"])
            + f"); vs the in-process loop {pairs['lsml overhead_p50_ms b1']:+.2f} ms; "
            f"legacy vs inside {pairs['legacy overhead_vs_inside_p50_ms b1']:+.2f} ms; "
            f"no-op model HTTP p50: lsml {summary['lsml no-op b1 c1']['p50_ms']:.2f} ms",
            "met": inside <= 0.5,
        }
    )
    cores = os.cpu_count() or 1
    share = pairs["b100 c8 share of cores x raw"]
    splits = [r["cells"]["lsml b100 c8"].get("connection_split") for r in rounds]
    rows.append(
        {
            "target": f"lsml throughput, batch 100, concurrency 8 >= 75% of {cores} cores x raw batch-100 rate",
            "measured": f"{100 * share:.0f}% (rounds "
            + ", ".join(f"{100 * v:.0f}%" for v in pairs["b100 c8 share of cores x raw per round"])
            + f"; {summary['lsml b100 c8']['rps']:.0f} req/s vs raw "
            f"{summary['raw b100']['rps']:.0f}/s per core); wrk's 8 connections per server "
            f"process, per round: {' '.join('/'.join(map(str, sp or [])) for sp in splits)}; "
            f"vs legacy {pairs['rps_ratio b100 c8']:.2f}x",
            "met": share >= 0.75,
        }
    )
    for kind in ("health", "setup"):
        p = loading["lsml"][kind]
        ok = p.get("count", 0) > 0 and p["p99_ms"] < 50 and p["statuses"] == [200]
        rows.append(
            {
                "target": f"lsml /{kind} p99 < 50 ms while a 5 s model loads",
                "measured": f"{p.get('p99_ms', float('nan')):.1f} ms over {p.get('count', 0)} requests, "
                f"statuses {p.get('statuses')}",
                "met": ok,
            }
        )
    return rows


def render(result: dict) -> str:
    """The markdown table bench/README.md shows."""
    s = result["summary"]
    lines = [
        "| server | batch | concurrency | req/s | tasks/s | p50 ms | p95 ms | p99 ms "
        "| predict() p50 ms inside server | server CPU ms/req | server cores busy | wrk cores busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch in BATCHES:
        raw = s[f"raw b{batch}"]
        lines.append(
            f"| raw predict (in-process) | {batch} | 1 | {raw['rps']:.0f} | {raw['rps'] * batch:.0f} | "
            f"{raw['p50_ms']:.2f} | {raw['p95_ms']:.2f} | {raw['p99_ms']:.2f} | "
            f"{raw['p50_ms']:.2f} | {raw['cpu_ms_per_call']:.2f} | | |"
        )
        for conc in CONCURRENCY:
            for name in SERVERS + (NOOP if conc == 1 else ()):
                c = s[f"{name} b{batch} c{conc}"]
                lines.append(
                    f"| {name} | {batch} | {conc} | {c['rps']:.0f} | {c['rps'] * batch:.0f} | "
                    f"{c['p50_ms']:.2f} | {c['p95_ms']:.2f} | {c['p99_ms']:.2f} | "
                    f"{c.get('model_p50_ms', float('nan')):.2f} | {c['server_cpu_ms_per_req']:.2f} | "
                    f"{c['server_cores']:.2f} | {c['wrk_cores']:.2f} |"
                )
    errors = {k: c["errors"] for k, c in s.items() if c.get("errors")}
    lines += ["", f"Socket errors or non-2xx answers during load: {errors or 'none'}."]
    p = result["paired"]
    lines += [
        "",
        "lsml / legacy throughput, paired within each round (median over rounds): "
        + ", ".join(
            f"batch {b} concurrency {c}: {p[f'rps_ratio b{b} c{c}']:.2f}x" for b in BATCHES for c in CONCURRENCY
        )
        + ".",
    ]
    lines += [
        "",
        "While a model whose setup() sleeps 5 s loads (2 threads on /health, 2 on /setup):",
        "",
        "| server | loaded after s | endpoint | requests | p50 ms | p99 ms | max ms | statuses |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for name, ld in result["loading"].items():
        for kind in ("health", "setup"):
            p = ld[kind]
            loaded = f"{ld['loaded_after_s']:.1f}" if ld["loaded_after_s"] is not None else "never"
            lines.append(
                f"| {name} | {loaded} | /{kind} | {p.get('count', 0)} | {p.get('p50_ms', 0):.1f} | "
                f"{p.get('p99_ms', 0):.1f} | {p.get('max_ms', 0):.1f} | {p.get('statuses', [])} |"
            )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |" for t in result["targets"]]
    m = result["machine"]
    lines += [
        "",
        f"Machine: nproc={m['nproc']}, {m['cpu']}, Python {m['python']}, {m['date_utc']} UTC; "
        f"load average at start {m['loadavg_start']}, per round "
        f"{[r['loadavg'] for r in result['rounds']]}, at end {result['loadavg_end']}. "
        "wrk and the server share the same 2 cores.",
    ]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians over them")
    parser.add_argument("--seconds", type=int, default=3, help="measured seconds per cell (after 1 s warm-up)")
    parser.add_argument("--out", type=Path, default=RESULTS / "predict.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "rounds": [],
        "loading": {},
    }
    legacy_py = legacy_python()
    work = Path(tempfile.mkdtemp(prefix="lsml-bench-predict-"))
    model_path = textmodel.train(work / "model.pkl")
    bodies = {}
    for batch in BATCHES:
        bodies[batch] = work / f"predict-b{batch}.json"
        bodies[batch].write_text(json.dumps(textmodel.predict_body(textmodel.make_tasks(batch))))

    servers: list[Server] = []
    try:
        # Loading test first, on fresh servers with the slow model.
        for name in SERVERS:
            if name == "lsml":
                slow = start_lsml(work, "SlowLoadingTextClassifier", model_path, {"BENCH_SETUP_SECONDS": "5"})
            else:
                slow = start_legacy(
                    work, "SlowLoadingLegacyTextClassifier", model_path, legacy_py, {"BENCH_SETUP_SECONDS": "5"}
                )
            servers.append(slow)
            # Started = answering and done importing the model module (lsml imports it in the
            # background and says so on /readyz; legacy's gunicorn --preload imports it before binding).
            slow.wait_healthy(path="/readyz", times=10) if name == "lsml" else slow.wait_healthy()
            result["loading"][name] = hammer_while_loading(slow)
            slow.stop()
            print(f"loading test {name}: {json.dumps(result['loading'][name])}", flush=True)

        live = {
            "lsml": start_lsml(work, "TextClassifier", model_path, {}),
            "legacy": start_legacy(work, "LegacyTextClassifier", model_path, legacy_py, {}),
            "lsml no-op": start_lsml(work, "NoOpTextClassifier", model_path, {}),
            "legacy no-op": start_legacy(work, "NoOpLegacyTextClassifier", model_path, legacy_py, {}),
        }
        servers += list(live.values())
        ports = {name: server.port for name, server in live.items()}
        for name, port in ports.items():
            live[name].wait_healthy(path="/readyz", times=10) if name.startswith("lsml") else live[name].wait_healthy()
            status, body = Client(port).post_json("/setup", textmodel.setup_body())
            if status != 200:
                raise RuntimeError(f"{name} /setup answered {status}: {body}")
        check_same_predictions({name: ports[name] for name in SERVERS}, model_path)
        for name in live:  # every worker process builds its model on its first requests: not in a cell
            run_wrk(live[name], bodies[1], 8, 5 if name in SERVERS else 2, work)
        result["served_as"] = {
            name: {"command": server.cmd, "banner": server.banner()} for name, server in live.items()
        }

        for r in range(args.rounds):
            # Each cell runs on both servers back to back (alternating who goes first), and each
            # concurrency-1 cell right after a raw timing: the compared figures are neighbours in time.
            cells: dict[str, dict] = {}
            order = SERVERS if r % 2 == 0 else SERVERS[::-1]
            for batch in BATCHES:
                for conc in CONCURRENCY:
                    for name in order:
                        if conc == 1:
                            cells[f"raw b{batch} before {name}"] = raw_predict(model_path, batch, 1.5)
                        run_wrk(live[name], bodies[batch], conc, 1, work)  # warm-up, discarded
                        cells[f"{name} b{batch} c{conc}"] = run_wrk(live[name], bodies[batch], conc, args.seconds, work)
                    if conc == 1:
                        for name in NOOP if r % 2 == 0 else NOOP[::-1]:
                            run_wrk(live[name], bodies[batch], conc, 1, work)
                            cells[f"{name} b{batch} c1"] = run_wrk(live[name], bodies[batch], conc, args.seconds, work)
            result["rounds"].append({"loadavg": loadavg(), "cells": cells})
            print(f"round {r + 1}/{args.rounds} done, load {loadavg()}", flush=True)
    finally:
        for s in servers:
            s.stop()

    result["loadavg_end"] = loadavg()
    result["summary"] = median_cells(result["rounds"])
    result["paired"] = paired(result["rounds"])
    result["targets"] = targets(result["paired"], result["summary"], result["loading"], result["rounds"])
    table = render(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
