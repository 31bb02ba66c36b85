"""What the serving path costs next to the model's own predict(), code or settings side by side (issue 21 part 1).

Why this shape:
- The figure that noise on a shared machine moves least is **server CPU per
  request** (CPU seconds of the server's whole process tree over the requests it
  answered), set against **the model's predict() CPU per call** (the same model,
  called back to back in this process right before each cell). Their ratio is
  the cost of everything around the model: HTTP, Flask, lsml's routes, threads.
- Each "side" is a version of `runtime/` (a git ref exported to a directory put
  first on PYTHONPATH, or `.`: this checkout) plus environment for
  `label-studio-ml start` (WORKERS, THREADS, LSML_PREDICT_CONCURRENCY...). All
  sides serve the same model at the same time; each cell runs on every side back
  to back, the order rotating per round; figures are medians over rounds and the
  ratios are taken within a round.
- Two phases: **shared** (servers and wrk on every core: the CPU ratio) and
  **pinned** (wrk on CPU 0, each server started under `taskset -c 1-N` so its
  defaults see N-1 cores; the raw rate measured in this process on CPU 1):
  throughput against (N-1) cores x the raw rate, the raw rate being one core's
  worth of predict() calls (1 / its CPU per call: what a dedicated core does).
  Pinned servers get WORKERS = their cores unless the side sets WORKERS.
- `--wait` adds a model whose predict sleeps 20 ms (the GIL released, as a GPU
  kernel or a remote call does): what the thread settings do to such a model.

Usage: .venv/bin/python bench/serving_overhead.py [--side NAME=REF[:VAR=VALUE,...]]... [--rounds 3] [--seconds 3]
Default sides: before=main, after=. (this checkout), both with `start`'s defaults.
Writes bench/results/serving_overhead.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import predict
from harness import failed_requests, loadavg, machine, proc_stats, process_tree

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
BATCHES = (1, 100)
CONCURRENCY = 8
MODELS = {"model": "TextClassifier", "no-op": "NoOpTextClassifier", "wait": "WaitingTextClassifier"}


@dataclass
class Side:
    """One version of the runtime and the environment `label-studio-ml start` runs with."""

    name: str
    ref: str  # a git ref, or "." for this checkout
    env: dict[str, str] = field(default_factory=dict)
    commit: str = ""
    pythonpath: str = ""

    @classmethod
    def parse(cls, text: str) -> Side:
        name, _, rest = text.partition("=")
        ref, _, env = rest.partition(":")
        pairs = dict(item.split("=", 1) for item in env.split(",") if item)
        if not name or not ref:
            raise SystemExit(f"--side {text!r}: want NAME=REF[:VAR=VALUE,...]")
        return cls(name, ref, pairs)

    def export(self, work: Path) -> None:
        """A git ref's runtime/ in a directory of its own (first on PYTHONPATH); `.` is the checkout itself."""
        if self.ref == ".":
            self.commit = git("rev-parse", "--short", "HEAD") + (
                " + working tree" if git("status", "--porcelain") else ""
            )
            return
        self.commit = git("rev-parse", "--short", self.ref)
        target = work / f"src-{self.name}"
        target.mkdir()
        archive = subprocess.run(
            ["git", "archive", self.ref, "runtime"], cwd=predict.REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        self.pythonpath = str(target / "runtime")

    def start(self, model: str, work: Path, model_path: Path, prefix: list[str] | None, cores: int) -> predict.Server:
        """Pinned (`prefix`): WORKERS = the cores it has, unless the side sets WORKERS."""
        env = {
            **({"WORKERS": str(cores)} if prefix else {}),
            **self.env,
            **({"PYTHONPATH": self.pythonpath} if self.pythonpath else {}),
        }
        home = work / f"{self.name}-{model}-{'pinned' if prefix else 'shared'}"
        home.mkdir()
        return predict.start_lsml(home, MODELS[model], model_path, env, prefix)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=predict.REPO, check=True, capture_output=True, text=True).stdout.strip()


def check_code(side: Side, server: predict.Server) -> None:
    """Every gunicorn process of the server imports the side's runtime (PYTHONPATH in its environment)."""
    stats = proc_stats()
    for pid in process_tree(server.proc.pid, stats):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gunicorn" not in cmdline:
            continue
        paths = [e for e in environ if e.startswith(b"PYTHONPATH=")]
        ok = (
            any(side.pythonpath.encode() in e for e in paths)
            if side.pythonpath
            else not any(b"/src-" in e for e in paths)
        )
        if not ok:
            raise RuntimeError(
                f"{side.name}: gunicorn process {pid} runs with {paths}, not {side.pythonpath or 'the checkout'}"
            )


def with_affinity(cpus: set[int] | None, fn: Any, *args: Any) -> Any:
    """`fn(*args)` with this process on `cpus` (None: wherever it is)."""
    if cpus is None:
        return fn(*args)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return fn(*args)
    finally:
        os.sched_setaffinity(0, before)


def run_phase(
    phase: str,
    sides: list[Side],
    models: list[str],
    args: argparse.Namespace,
    work: Path,
    model_path: Path,
    bodies: dict,
) -> list[dict]:
    ncpu = len(os.sched_getaffinity(0))
    pinned = phase == "pinned"
    server_cpus = f"1-{ncpu - 1}" if ncpu > 2 else "1"
    prefix = ["taskset", "-c", server_cpus] if pinned else None
    wrk_cpus = "0" if pinned else None
    raw_cpus = {1} if pinned else None
    servers: dict[tuple[str, str], predict.Server] = {}
    rounds = []
    try:
        for side in sides:
            for model in models:
                servers[side.name, model] = side.start(model, work, model_path, prefix, max(1, ncpu - 1))
        for (name, model), server in servers.items():
            server.wait_healthy(path="/readyz", times=10)
            status, body = predict.Client(server.port).post_json("/setup", predict.textmodel.setup_body())
            if status != 200:
                raise RuntimeError(f"{name} {model} /setup answered {status}: {body}")
            check_code(next(s for s in sides if s.name == name), server)
        predict.check_same_predictions({s.name: servers[s.name, "model"].port for s in sides}, model_path)
        for server in servers.values():  # every worker process builds its model on its first requests
            predict.run_wrk(server, bodies[1], CONCURRENCY, 2, work, wrk_cpus)
        for r in range(args.rounds):
            cells: dict[str, dict] = {}
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for batch in BATCHES:
                cells[f"raw b{batch}"] = with_affinity(raw_cpus, predict.raw_predict, model_path, batch, 1.5)
                for model in models:
                    for side in order:
                        server = servers[side.name, model]
                        predict.run_wrk(server, bodies[batch], CONCURRENCY, 1, work, wrk_cpus)  # warm-up
                        cells[f"{side.name} {model} b{batch}"] = predict.run_wrk(
                            server, bodies[batch], CONCURRENCY, args.seconds, work, wrk_cpus
                        )
            rounds.append({"loadavg": loadavg(), "cells": cells})
            print(f"{phase} round {r + 1}/{args.rounds} done, load {loadavg()}", flush=True)
        for (name, model), server in servers.items():
            rounds[-1].setdefault("banners", {})[f"{name} {model}"] = server.banner()
    finally:
        for server in servers.values():
            server.stop()
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", action="append", type=Side.parse, help="NAME=REF[:VAR=VALUE,...] (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--phases", default="shared,pinned", help="shared, pinned or both (comma-separated)")
    parser.add_argument("--no-op", action="store_true", help="also serve a no-op model (the path alone)")
    parser.add_argument(
        "--wait", action="store_true", help="also serve a model that waits 20 ms without the GIL (GPU or remote)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serving_overhead.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    sides: list[Side] = args.side or [Side("before", "main"), Side("after", ".")]
    models = ["model"] + (["no-op"] if args.no_op else []) + (["wait"] if args.wait else [])
    phases = [p for p in args.phases.split(",") if p]
    if len(os.sched_getaffinity(0)) < 2 and "pinned" in phases:
        sys.exit("the pinned phase needs 2 CPUs or more")

    work = Path(tempfile.mkdtemp(prefix="lsml-bench-overhead-"))
    for side in sides:
        side.export(work)
    model_path = predict.textmodel.train(work / "model.pkl")
    bodies = {}
    for batch in BATCHES:
        bodies[batch] = work / f"predict-b{batch}.json"
        bodies[batch].write_text(json.dumps(predict.textmodel.predict_body(predict.textmodel.make_tasks(batch))))
    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "sides": [{"name": s.name, "ref": s.ref, "commit": s.commit, "env": s.env} for s in sides],
        "phases": {},
    }
    try:
        for phase in phases:
            result["phases"][phase] = run_phase(phase, sides, models, args, work, model_path, bodies)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    table = render(result, models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    return 0


def render(result: dict, models: list[str]) -> str:
    sides = [s["name"] for s in result["sides"]]
    lines = [
        "Sides: "
        + "; ".join(
            f"**{s['name']}** = {s['ref']} ({s['commit']}){' ' + str(s['env']) if s['env'] else ''}"
            for s in result["sides"]
        )
        + ". Medians over rounds; ratios taken within each round.",
        "",
    ]
    for phase, rounds in result["phases"].items():

        def med(key: str, figure: str, rounds: list = rounds) -> float:
            return statistics.median(r["cells"][key][figure] for r in rounds)

        def ratio(key: str, batch: int, rounds: list = rounds) -> float:
            return statistics.median(
                r["cells"][key]["server_cpu_ms_per_req"] / r["cells"][f"raw b{batch}"]["cpu_ms_per_call"]
                for r in rounds
            )

        def share(key: str, batch: int, cores: int, rounds: list = rounds) -> float:
            return statistics.median(
                r["cells"][key]["rps"] * r["cells"][f"raw b{batch}"]["cpu_ms_per_call"] / (1000 * cores) for r in rounds
            )

        def inside(key: str, rounds: list = rounds) -> float:
            return statistics.median(r["cells"][key].get("model_cpu_ms_per_call") or 0.0 for r in rounds)

        def rest(key: str, rounds: list = rounds) -> float:
            return statistics.median(
                r["cells"][key]["server_cpu_ms_per_req"] - (r["cells"][key].get("model_cpu_ms_per_call") or 0.0)
                for r in rounds
            )

        ncpu = result["machine"]["nproc"]
        cores = ncpu - 1 if phase == "pinned" else ncpu
        where = (
            f"wrk on CPU 0, the servers on {cores} CPU(s) of their own"
            if phase == "pinned"
            else "servers and wrk on every CPU"
        )
        lines += [
            f"**{phase}** ({where}; load average per round {[r['loadavg'] for r in rounds]}):",
            "",
            "| side | model | batch | predict() CPU ms/call (raw) | server CPU ms/req | ratio "
            "| predict() CPU in the server | the rest | req/s | raw req/s x cores "
            "| throughput / (cores x raw) | p50 ms | p99 ms | server cores busy | connections per process |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for batch in BATCHES:
            raw = med(f"raw b{batch}", "cpu_ms_per_call")
            raw_rps = 1000 / raw  # what one core does running predict() back to back
            for model in models:
                for side in sides:
                    key = f"{side} {model} b{batch}"
                    splits = [r["cells"][key]["connection_split"] for r in rounds]
                    lines.append(
                        f"| {side} | {model} | {batch} | {raw if model == 'model' else 0:.3f} | "
                        f"{med(key, 'server_cpu_ms_per_req'):.3f} | "
                        f"{f'{ratio(key, batch):.2f}' if model == 'model' else '-'} | "
                        f"{inside(key):.3f} | {rest(key):.3f} | "
                        f"{med(key, 'rps'):.0f} | {cores * raw_rps:.0f} | "
                        f"{f'{share(key, batch, cores):.0%}' if model == 'model' else '-'} | "
                        f"{med(key, 'p50_ms'):.2f} | {med(key, 'p99_ms'):.2f} | {med(key, 'server_cores'):.2f} | "
                        f"{' '.join('/'.join(map(str, s)) for s in splits)} |"
                    )
        errors = failed_requests(rounds)
        lines += ["", f"Socket errors or non-2xx answers: {errors or 'none'}.", ""]
    m = result["machine"]
    lines.append(
        f"Machine: nproc={m['nproc']}, {m['cpu']}, Python {m['python']}, {m['date_utc']} UTC; load average at start "
        f"{m['loadavg_start']}, at end {result['loadavg_end']}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
