"""lsml's serving worker before and after a change, side by side in one run (issue 23).

Why: the worker (runtime/lsml/server/gunicorn_worker.py) is the HTTP path every
request takes; a rewrite must not cost CPU per request or latency. Figures from
two runs on this shared 2-core machine are not comparable (other engineers'
jobs come and go), so both workers serve the same model at the same time, and
each cell runs on both back to back, alternating which goes first.

- **before**: the worker module at a git ref (default `main`), copied out of git
  under another module name (`lsml_worker_before`) and chosen with
  `GUNICORN_CMD_ARGS=--worker-class lsml_worker_before.ThreadWorker` (gunicorn
  applies that variable over the config file); **after**: the worker of this
  checkout. Both are `label-studio-ml start` exactly as `bench/predict.py` runs
  it (2 workers x 8 threads, Redis, RQ worker), on the gunicorn of .venv.
- Cells: batch 1 and 100, concurrency 1 and 8 (wrk, closed loop), the model of
  `bench/predict.py`; plus a no-op model at concurrency 1 and 8 (the HTTP
  path alone). **model CPU per call**: its predict() timed in this process.
- Figures: medians over rounds; the "after - before" column is taken within
  each round, then the median.

Usage: .venv/bin/python bench/worker_ab.py [--before main] [--rounds 3] [--seconds 3]   (about 4 minutes)
Writes bench/results/worker_ab.json and bench/results/worker_ab.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import predict
from harness import failed_requests, loadavg, machine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WORKER = "runtime/lsml/server/gunicorn_worker.py"
SIDES = ("before", "after")
MODELS = {"model": "TextClassifier", "no-op": "NoOpTextClassifier"}


def start(side: str, model: str, work: Path, model_path: Path, before_dir: Path) -> predict.Server:
    env = {}
    if side == "before":
        env = {"PYTHONPATH": str(before_dir), "GUNICORN_CMD_ARGS": "--worker-class lsml_worker_before.ThreadWorker"}
    server = predict.start_lsml(work / side, MODELS[model], model_path, env)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="main", help="git ref whose worker module is 'before'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "worker_ab.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="lsml-bench-worker-ab-"))
    before_dir = work / "before-module"
    before_dir.mkdir()
    source = subprocess.run(
        ["git", "show", f"{args.before}:{WORKER}"], cwd=predict.REPO, check=True, capture_output=True, text=True
    ).stdout
    (before_dir / "lsml_worker_before.py").write_text(source)
    before_commit = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=predict.REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    after_commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=predict.REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    model_path = predict.textmodel.train(work / "model.pkl")
    bodies = {}
    for batch in predict.BATCHES:
        bodies[batch] = work / f"predict-b{batch}.json"
        bodies[batch].write_text(json.dumps(predict.textmodel.predict_body(predict.textmodel.make_tasks(batch))))

    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "before": f"{args.before} ({before_commit})",
        "after": f"HEAD ({after_commit})",
        "rounds": [],
    }
    servers: dict[tuple[str, str], predict.Server] = {}
    try:
        for side in SIDES:
            (work / side).mkdir()
            for model in MODELS:
                servers[side, model] = start(side, model, work, model_path, before_dir)
        for (side, model), server in servers.items():
            server.wait_healthy(path="/readyz", times=10)
            status, body = predict.Client(server.port).post_json("/setup", predict.textmodel.setup_body())
            if status != 200:
                raise RuntimeError(f"{side} {model} /setup answered {status}: {body}")
            want = "lsml_worker_before.ThreadWorker" if side == "before" else "lsml.server.gunicorn_worker.ThreadWorker"
            log = Path(server.cmd[2]) / "logs" / "server.log"  # `label-studio-ml start DIR`: gunicorn logs there
            if f"Using worker: {want}" not in log.read_text(errors="replace"):
                raise RuntimeError(f"{side} {model} does not run {want}: see {log}")
        predict.check_same_predictions({side: servers[side, "model"].port for side in SIDES}, model_path)
        for server in servers.values():  # every worker process builds its model on its first requests
            predict.run_wrk(server, bodies[1], 8, 3, work)
        result["served_as"] = {
            f"{side} {model}": {"command": s.cmd, "banner": s.banner()} for (side, model), s in servers.items()
        }

        for r in range(args.rounds):
            cells: dict[str, dict] = {}
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for batch in predict.BATCHES:
                cells[f"raw b{batch}"] = predict.raw_predict(model_path, batch, 1.5)
                for model in MODELS:
                    for conc in predict.CONCURRENCY:
                        for side in order:
                            server = servers[side, model]
                            predict.run_wrk(server, bodies[batch], conc, 1, work)  # warm-up, discarded
                            cells[f"{side} {model} b{batch} c{conc}"] = predict.run_wrk(
                                server, bodies[batch], conc, args.seconds, work
                            )
            result["rounds"].append({"loadavg": loadavg(), "cells": cells})
            print(f"round {r + 1}/{args.rounds} done, load {loadavg()}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    result["loadavg_end"] = loadavg()
    table = render(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(table)
    return 0


def render(result: dict) -> str:
    rounds = result["rounds"]

    def med(key: str, figure: str) -> float:
        return statistics.median(r["cells"][key][figure] for r in rounds)

    def diff(key: str, figure: str) -> float:
        return statistics.median(
            r["cells"][f"after {key}"][figure] - r["cells"][f"before {key}"][figure] for r in rounds
        )

    lines = [
        f"before = {result['before']}, after = {result['after']}; medians over {len(rounds)} rounds.",
        "",
        "| model | batch | concurrency | model CPU ms/call | server CPU ms/req before | after | after - before "
        "| req/s before | after | p50 ms before | after | p99 ms before | after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch in predict.BATCHES:
        raw = med(f"raw b{batch}", "cpu_ms_per_call")
        for model in MODELS:
            for conc in predict.CONCURRENCY:
                key = f"{model} b{batch} c{conc}"
                lines.append(
                    f"| {model} | {batch} | {conc} | {raw if model == 'model' else 0:.2f} | "
                    f"{med('before ' + key, 'server_cpu_ms_per_req'):.3f} | "
                    f"{med('after ' + key, 'server_cpu_ms_per_req'):.3f} | "
                    f"{diff(key, 'server_cpu_ms_per_req'):+.3f} | "
                    f"{med('before ' + key, 'rps'):.0f} | {med('after ' + key, 'rps'):.0f} | "
                    f"{med('before ' + key, 'p50_ms'):.2f} | {med('after ' + key, 'p50_ms'):.2f} | "
                    f"{med('before ' + key, 'p99_ms'):.2f} | {med('after ' + key, 'p99_ms'):.2f} |"
                )
    errors = failed_requests(rounds)
    m = result["machine"]
    lines += [
        "",
        f"Socket errors or non-2xx answers during load: {errors or 'none'}.",
        "",
        f"Machine: nproc={m['nproc']}, {m['cpu']}, Python {m['python']}, {m['date_utc']} UTC; load average at "
        f"start {m['loadavg_start']}, per round {[r['loadavg'] for r in rounds]}, at end {result['loadavg_end']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
