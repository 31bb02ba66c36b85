"""lsml's Flask app in-process, without a server: how its CPU per /predict splits (issue 21 part 1).

Why: `bench/serving_overhead.py` measures the server's CPU per request as a whole;
this takes the worker, the sockets and the other threads away and calls the WSGI
app directly, one request after another, so what is left is Flask, lsml's routes
and the predict gate. Three figures per model and batch, each CPU time per call
(`time.process_time`, so predict threads count too):

- **app**: the whole `/predict` through the WSGI app (body from memory), once with
  the fast path (`lsml.server.fast_predict`) and once through Flask
  (`LSML_PREDICT_FAST_PATH=false`), each in a process of its own, back to back;
- **predict()**: the model's predict called directly;
- **via the gate**: the same call through `PredictGate.run` (the hand-off to a
  predict thread and back).

Usage: .venv/bin/python bench/app_inprocess.py [--calls 1500]
Another version of `runtime/` (e.g. main's): export it and put it first on
PYTHONPATH (`git archive main runtime | tar -x -C DIR`, then `PYTHONPATH=DIR/runtime`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH / "backends"))

import textmodel  # noqa: E402

MODELS = ("TextClassifier", "NoOpTextClassifier")
BATCHES = (1, 100)


def measure(cls_name: str, batch: int, calls: int, work: Path) -> dict:
    import lsml_text
    from werkzeug.test import EnvironBuilder

    import lsml
    from lsml.server.app import create_app

    app = create_app(f"lsml_text:{cls_name}")
    body = json.dumps(textmodel.predict_body(textmodel.make_tasks(batch))).encode()

    def environ() -> dict:
        env = EnvironBuilder(path="/predict", method="POST", data=body, content_type="application/json").get_environ()
        env["wsgi.input"] = io.BytesIO(body)
        return env

    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    app.test_client().post("/setup", json=textmodel.setup_body())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the model builds in the background: wait for a 200
        statuses.clear()
        b"".join(app(environ(), start_response))
        if statuses[0].startswith("200"):
            break
        time.sleep(0.05)
    envs = [environ() for _ in range(calls)]
    statuses.clear()
    t = time.process_time()
    for env in envs:
        b"".join(app(env, start_response))
    app_ms = 1e3 * (time.process_time() - t) / calls
    assert all(s.startswith("200") for s in statuses), set(statuses)

    model = getattr(lsml_text, cls_name)(project_id="1", label_config=textmodel.LABEL_CONFIG)
    tasks = textmodel.make_tasks(batch)
    t = time.process_time()
    for _ in range(calls):
        model.predict(tasks)
    predict_ms = 1e3 * (time.process_time() - t) / calls
    gate = app.extensions["lsml"].predict_gate
    t = time.process_time()
    for _ in range(calls):
        gate.run(model.predict, tasks)
    gate_ms = 1e3 * (time.process_time() - t) / calls
    return {
        "lsml": str(Path(lsml.__file__).parent),
        "model": cls_name,
        "batch": batch,
        "app_ms": app_ms,
        "predict_ms": predict_ms,
        "gate_ms": gate_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one (model, batch) per process: apps and threads of one do not weigh on the next
        cls_name, batch = args.child.split(":")
        print(json.dumps(measure(cls_name, int(batch), args.calls, Path(os.environ["BENCH_WORK"]))))
        return 0
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="lsml-bench-app-"))
    model_path = textmodel.train(work / "model.pkl")
    env = {
        **os.environ,
        "BENCH_MODEL_PATH": str(model_path),
        "MODEL_DIR": str(work / "models"),
        "BENCH_WORK": str(work),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("BENCH_TIMINGS_DIR", None)
    print(
        "| model | batch | app CPU ms/req (fast path) | through Flask | predict() CPU ms/call | via the gate | gate "
        "| app - predict() (fast path) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def child(cls_name: str, batch: int, fast: bool) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--calls", str(args.calls), "--child", f"{cls_name}:{batch}"],
            env={**env, "LSML_PREDICT_FAST_PATH": "true" if fast else "false"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    for cls_name in MODELS:
        for batch in BATCHES:
            r, flask = child(cls_name, batch, True), child(cls_name, batch, False)
            print(
                f"| {cls_name} | {batch} | {r['app_ms']:.3f} | {flask['app_ms']:.3f} | {r['predict_ms']:.3f} "
                f"| {r['gate_ms']:.3f} | {r['gate_ms'] - r['predict_ms']:+.3f} | {r['app_ms'] - r['predict_ms']:+.3f} |",
                flush=True,
            )
    print(f"\nlsml from {r['lsml']}; load average {[round(x, 2) for x in os.getloadavg()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
