"""Pre-labelling benchmark (issue 11): a 10,000-task project in a real Label Studio 1.23.2, end to end.

Why this shape: the job's worth is how close it gets to the model's own
speed while Label Studio and the live `/predict` path stay responsive, and
what a crash costs. So one run, on one machine, measures:

1. the raw `predict` rate of the model, in this process, on the very tasks
   (same batches), right before the job;
2. the job end to end (`POST /prelabel` -> `/job_status` finished): tasks/s,
   and where its time went (the job's own `timings`: reading pages, predict,
   writing predictions);
   Then Label Studio's own ceiling (issue 21): on a second project of the
   same tasks, the job's predictions, precomputed, posted in order at the
   job's batch size by a bare client; the job's share of that rate, and its
   read / predict / write / rest per batch;
3. while the job runs and while idle: Label Studio's task-list API
   (`GET /api/tasks?project=N&page_size=30`) and the backend's live
   `/predict` (one task, as Label Studio sends it), p50/p99;
4. a second job (mode `all`, the next version) whose worker is SIGKILLed
   (process group) halfway and restarted, without a resubmit (the same job
   runs again by itself, `LSML_PRELABEL_ATTEMPTS`): the time from the kill
   to the re-run and to the end, tasks predicted more than once
   (from the model's own log of task ids) and duplicate or missing
   predictions, counted from Label Studio's data;
5. `POST /versions/activate` -> every gunicorn process serving the version:
   probes over fresh connections, each answer attributed to the process that
   accepted it (`/proc/net/tcp` + the workers' fds).

The stack is what production runs: Label Studio (SQLite, `label-studio
start`), a private redis-server (free port, AOF), the backend
(`examples/text_classifier`, a copy) under gunicorn with 2 worker processes
(`tests/fixtures/rq_procs.start_server`) and 1 `label-studio-ml worker`. The
model is trained once (START_TRAINING on `--annotated` imported annotations)
before anything is measured. Everything shares this machine's cores.

    .venv/bin/python bench/prelabel.py [--tasks 10000] [--batch-size 200] [--ls-efficient-import] [--skip-kill]

Writes bench/results/prelabel.json (`--out`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH / "backends"))

import textmodel  # noqa: E402

from harness import loadavg, machine, percentiles, process_tree, socket_inodes  # noqa: E402
from lsml.prelabel import PrelabelRequest  # noqa: E402
from tests.fixtures.label_studio import LabelStudioServer, find_label_studio_binary  # noqa: E402
from tests.fixtures.polling import wait_for  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402
from tests.fixtures.rq_procs import Procs, start_server  # noqa: E402

EXAMPLE = REPO / "examples" / "text_classifier"
# The example's model, appending the ids of the tasks each predict call got to a file (one line per call):
# re-predictions are counted from what the model saw, whichever run or worker saw it.
COUNTED_MODEL = """
import json, os
from model import TextClassifier


class Counted(TextClassifier):
    def predict(self, tasks, context=None, **kwargs):
        with open(os.environ["BENCH_PREDICT_LOG"], "a") as log:
            log.write(json.dumps([t.get("id") for t in tasks]) + "\\n")
        return super().predict(tasks, context, **kwargs)
"""
MODEL_REF = "bench_model:Counted"
# Label Studio 1.23.2's feature flag (off by default) for the import/predictions path that recounts only the tasks
# it wrote; off, every call recounts every task of the project (data_import/api.py, ImportPredictionsAPI)
EFFICIENT_IMPORT_FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"


# ---- the stack -------------------------------------------------------------------------------------------
class Stack:
    """Label Studio, Redis, 2 gunicorn processes and 1 RQ worker, all started (and stopped) by this script."""

    def __init__(self, tmp: Path, ls_env: dict[str, str]) -> None:
        self.tmp = tmp
        self.label_studio = LabelStudioServer(find_label_studio_binary(), tmp / "label-studio", extra_env=ls_env)
        self.redis = RedisServer(tmp / "redis")
        self.procs = Procs(tmp)
        self.backend = tmp / "text_classifier"
        self.predict_log = tmp / "predicted.jsonl"
        self.worker: Any = None
        self.url = ""

    def env(self) -> dict[str, str]:
        return {
            "LSML_MODEL": MODEL_REF,
            "BENCH_PREDICT_LOG": str(self.predict_log),
            "LOG_LEVEL": "WARNING",
            "LSML_RELOAD_INTERVAL": "0.5",  # the default (start_server's is shorter, for tests)
            "LABEL_STUDIO_URL": self.label_studio.url,
            "LABEL_STUDIO_API_KEY": self.label_studio.legacy_token,
            "LSML_ADMIN_TOKEN": ADMIN_TOKEN,  # /prelabel is an admin route (SECURITY.md, issue 22 item 4)
        }

    def start(self) -> None:
        shutil.copytree(EXAMPLE, self.backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
        (self.backend / "bench_model.py").write_text(COUNTED_MODEL)
        self.label_studio.start()
        self.redis.start()
        # the servers' own predict calls (live /predict probes) go to another log than the worker's
        served = {**self.env(), "BENCH_PREDICT_LOG": str(self.tmp / "served.jsonl")}
        self.url = start_server(self.procs, self.backend, self.redis.url, workers=2, **served)
        self.start_worker()

    def start_worker(self) -> None:
        self.worker = self.procs.worker(self.backend, self.redis.url, new_session=True, **self.env())

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole process group (the worker and its work horse), as an OOM kill would."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)

    def server_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the master start_server started)."""
        master = next(p for p in self.procs.started if "gunicorn" in " ".join(map(str, p.args)))
        return [pid for pid in process_tree(master.pid) if pid != master.pid]

    def stop(self) -> None:
        self.procs.stop_all()
        self.redis.stop()
        self.label_studio.stop()


# ---- Label Studio ----------------------------------------------------------------------------------------
def make_project(stack: Stack, tasks: int, annotated: int) -> tuple[int, list[dict]]:
    """A project of `tasks` generated texts (textmodel's 3 classes), the first `annotated` with an annotation."""
    client = stack.label_studio.client(timeout=120)
    project = client.create_project("lsml prelabel bench", textmodel.LABEL_CONFIG)["id"]
    rng = random.Random(11)
    items = []
    for i in range(tasks):
        label = rng.choice(textmodel.LABELS)
        item: dict[str, Any] = {"data": {"text": textmodel.make_text(rng, label)}}
        if i < annotated:
            item["annotations"] = [
                {
                    "result": [
                        {
                            "from_name": textmodel.FROM_NAME,
                            "to_name": textmodel.TO_NAME,
                            "type": "choices",
                            "value": {"choices": [label]},
                        }
                    ]
                }
            ]
        items.append(item)
    for start in range(0, tasks, 2000):
        client.import_tasks(project, items[start : start + 2000])
    listed = [{"id": t["id"], "data": t["data"]} for t in client.iter_tasks(project, 1000, fields="all")]
    if len(listed) != tasks:
        raise SystemExit(f"Label Studio lists {len(listed)} tasks, {tasks} were imported")
    return project, sorted(listed, key=lambda t: t["id"])


def predictions_per_task(stack: Stack, project: int, version: str) -> dict[int, int]:
    """How many predictions of `version` Label Studio holds per task (its own data)."""
    counts: dict[int, int] = {}
    for p in stack.label_studio.client(timeout=300).predictions(project=project):
        if str(p.get("model_version")) == version:
            counts[p["task"]] = counts.get(p["task"], 0) + 1
    return counts


# ---- the backend -----------------------------------------------------------------------------------------
#: The servers' LSML_ADMIN_TOKEN: `post` sends it on every call (the Label Studio routes ignore it).
ADMIN_TOKEN = "bench-admin"


def post(stack: Stack, path: str, body: dict, timeout: float = 30) -> dict:
    r = requests.post(stack.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=timeout)
    if r.status_code >= 300:
        raise SystemExit(f"{path} answered {r.status_code}: {r.text[:500]}")
    return r.json()


def train(stack: Stack, project: int, versions_before: int) -> str:
    """START_TRAINING over the webhook (the worker fits on every annotated task); the new version's name."""
    post(
        stack,
        "/webhook",
        {"action": "START_TRAINING", "project": {"id": project, "label_config": textmodel.LABEL_CONFIG}},
    )
    from lsml.store import LocalModelStore

    store = LocalModelStore(stack.backend / "data" / "models")
    wait_for(lambda: len(store.versions(str(project))) > versions_before, 300, interval=0.2, what="the fit")
    return store.versions(str(project))[-1].name


def local_model(stack: Stack, project: int) -> Any:
    """The served model of `project`'s current version, built in this process (its predict log apart)."""
    from lsml.model import BuildContext, build_model, load_model_class
    from lsml.settings import Settings
    from lsml.state import MemoryState
    from lsml.store import LocalModelStore

    os.environ["BENCH_PREDICT_LOG"] = str(stack.tmp / "raw-predicted.jsonl")  # not the served model's log
    settings = Settings.from_env(env={}, backend_dir=stack.backend)
    version = LocalModelStore(settings.model_dir).current(str(project))
    cls = load_model_class(MODEL_REF, stack.backend)
    return build_model(cls, str(project), textmodel.LABEL_CONFIG, BuildContext(settings, MemoryState(), version))


def raw_rate(stack: Stack, project: int, tasks: list[dict], batch: int, rounds: int = 3) -> dict:
    """Tasks/s of the model's own `predict` here, on the same tasks in the same batches (median of rounds)."""
    model = local_model(stack, project)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(0, len(tasks), batch):
            model.predict(tasks[i : i + batch])
        rates.append(len(tasks) / (time.perf_counter() - started))
    return {
        "tasks_per_s": round(statistics.median(rates), 1),
        "rounds": [round(r, 1) for r in rates],
        "model_version": model.model_version,
    }


# ---- probes: Label Studio's task list and live /predict, in threads --------------------------------------
class Probe(threading.Thread):
    """Calls `request()` in a loop, `pause` s apart, recording (phase, seconds, ok) until stopped."""

    def __init__(self, name: str, request: Callable[[], bool], pause: float) -> None:
        super().__init__(name=name, daemon=True)
        self.request, self.pause = request, pause
        self.phase = "idle"
        self.samples: list[tuple[str, float, bool]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                ok = self.request()
            except (requests.RequestException, OSError):
                ok = False
            self.samples.append((self.phase, time.perf_counter() - started, ok))
            self.stopped.wait(self.pause)

    def summary(self, phase: str) -> dict:
        taken = [s for s in self.samples if s[0] == phase]
        out = percentiles([s[1] for s in taken if s[2]])
        out["failed"] = sum(1 for s in taken if not s[2])
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def start_probes(stack: Stack, project: int) -> list[Probe]:
    ls = requests.Session()
    ls.headers["Authorization"] = f"Token {stack.label_studio.legacy_token}"
    backend = requests.Session()
    body = {
        "tasks": [{"id": 1, "data": {"text": "great excellent service, would recommend"}}],
        "project": f"{project}.1700000000",
        "label_config": textmodel.LABEL_CONFIG,
    }

    def task_list() -> bool:
        return (
            ls.get(
                f"{stack.label_studio.url}/api/tasks", params={"project": project, "page_size": 30}, timeout=30
            ).status_code
            == 200
        )

    def predict() -> bool:
        return backend.post(stack.url + "/predict", json=body, timeout=30).status_code == 200

    # a person paging through the task list (2/s) and labelling with live predictions (10/s): enough samples
    # for a p99 in a minute, little enough not to be the load that is measured
    probes = [Probe("ls_task_list", task_list, 0.5), Probe("live_predict", predict, 0.1)]
    for probe in probes:
        probe.start()
    return probes


# ---- Label Studio's own ceiling: the same writes from a bare client --------------------------------------
def ceiling(stack: Stack, trained: int, project: int, tasks: list[dict], batch: int) -> dict:
    """Label Studio's `import/predictions` alone: the job's writes, precomputed, posted in order by a bare client.

    The physical limit of a pre-labelling job is Label Studio storing what it is sent; this is that limit
    for the job's batch size, on a project like the job's (same tasks, no prediction yet), so the job's
    share of it says what the job's own reads, predict and bookkeeping cost.
    """
    from lsml.prelabel import prediction_records
    from lsml.response import serialize_predictions, task_predictions

    model = local_model(stack, trained)
    batches = []
    for i in range(0, len(tasks), batch):
        chunk = tasks[i : i + batch]
        output = task_predictions(serialize_predictions(model.predict(chunk), model.model_version), untrained=False)
        batches.append(prediction_records(chunk, output, model.model_version))
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.label_studio.legacy_token}"
    url = f"{stack.label_studio.url}/api/projects/{project}/import/predictions"
    probe = start_probes(stack, project)[0]  # the task list of the project written to, as during the job
    time.sleep(5)  # a few idle samples of this project too
    probe.phase = "ceiling"
    each = []
    started = time.perf_counter()
    for records in batches:
        t0 = time.perf_counter()
        r = session.post(url, json=records, timeout=300)
        if r.status_code >= 300:
            raise SystemExit(f"import/predictions answered {r.status_code}: {r.text[:300]}")
        each.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    probe.phase = "after"
    probe.stopped.set()
    return {
        "seconds": round(seconds, 2),
        "tasks_per_s": round(len(tasks) / seconds, 1),
        "batches": len(batches),
        "write_per_batch": {k: round(v, 2) if isinstance(v, float) else v for k, v in percentiles(each).items()},
        "label_studio_task_list": {p: probe.summary(p) for p in ("idle", "ceiling")},
    }


# ---- the jobs --------------------------------------------------------------------------------------------
def run_job(stack: Stack, body: dict, until: Callable[[dict], bool] | None = None) -> tuple[str, dict, float]:
    """Queue a job; poll /job_status until it ends (or `until(status)`); (job id, last status, seconds)."""
    started = time.monotonic()
    job = post(stack, "/prelabel", body)["job"]
    while True:
        st = post(stack, "/job_status", {"job": job})
        if st["status"] in ("finished", "failed") or (until is not None and until(st)):
            return job, st, time.monotonic() - started
        time.sleep(0.25)


def predicted_ids(path: Path, from_line: int = 0) -> list[int]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [i for line in lines[from_line:] for i in json.loads(line)]


def kill_halfway(stack: Stack, project: int, total: int, batch: int, version: str) -> dict:
    """Mode `all` with `version`: SIGKILL the worker's group at half, restart it, no resubmit: the same job
    runs again by itself (`LSML_PRELABEL_ATTEMPTS`) and resumes from its checkpoint; count."""
    log_from = len(stack.predict_log.read_text().splitlines()) if stack.predict_log.exists() else 0
    body = {"project": project, "batch_size": batch, "mode": "all"}
    job, st, _ = run_job(stack, body, until=lambda s: (s.get("progress") or {}).get("done", 0) >= total // 2)
    if st["status"] != "started":
        raise SystemExit(f"the job ended before half: {st}")
    stack.kill_worker()
    killed = time.monotonic()
    killed_at = st["progress"]["done"]
    written_at_kill = len(predictions_per_task(stack, project, version))
    stack.start_worker()
    statuses: list[str] = []

    def rerun() -> dict | None:
        s = post(stack, "/job_status", {"job": job})
        statuses.append(s["status"])
        return s if s["status"] in ("finished", "failed") or (s.get("attempt") or 0) >= 2 else None

    again = wait_for(rerun, 120, interval=0.25, what="the killed job to run again")
    rerun_s = time.monotonic() - killed
    resumed = wait_for(
        lambda: (lambda s: s if s["status"] in ("finished", "failed") else None)(
            post(stack, "/job_status", {"job": job})
        ),
        3600,
        interval=0.5,
        what="the re-run to end",
    )
    seconds = time.monotonic() - killed
    if resumed["status"] != "finished":
        raise SystemExit(f"the resumed job did not finish: {resumed}")
    ids = predicted_ids(stack.predict_log, log_from)
    counts = predictions_per_task(stack, project, version)
    per_task: dict[int, int] = {}
    for i in ids:
        per_task[i] = per_task.get(i, 0) + 1
    return {
        "mode": "all",
        "model_version": version,
        "job": job,
        "resubmitted": False,
        "attempt": resumed.get("attempt"),
        "statuses_seen_after_kill": sorted(set(statuses)),
        "status_when_rerun_seen": again["status"],
        "done_at_kill": killed_at,
        "predictions_in_label_studio_at_kill": written_at_kill,
        "seconds_from_kill_to_rerun": round(rerun_s, 1),
        "resumed_progress": resumed["progress"],
        "seconds_from_kill_to_finished": round(seconds, 1),
        "tasks_predicted_more_than_once": sum(1 for n in per_task.values() if n > 1),
        "extra_predict_calls_of_tasks": len(ids) - len(per_task),
        "tasks_never_predicted": total - len(per_task),
        "duplicate_predictions_in_label_studio": sum(n - 1 for n in counts.values() if n > 1),
        "tasks_without_a_prediction_of_version": total - len(counts),
    }


# ---- activate -> every process serves it ----------------------------------------------------------------
def _accepting_pid(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The server process holding the server side of the connection from `client_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
            inode = fields[9]
            break
    return next((pid for pid in pids if inode in socket_inodes(pid)), None) if inode else None


def served_by(stack: Stack, project: int, pids: list[int]) -> tuple[int | None, str]:
    """One /predict over a fresh connection: (the process that answered, the version it served)."""
    port = int(stack.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(
        {
            "tasks": [{"id": 1, "data": {"text": "okay"}}],
            "project": f"{project}.1700000000",
            "label_config": textmodel.LABEL_CONFIG,
        }
    )
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        pid = _accepting_pid(port, conn.sock.getsockname()[1], pids)  # still open: keep-alive
    finally:
        conn.close()
    return pid, str(answer["results"][0]["model_version"])


def activation(stack: Stack, project: int, version: str, streak: int = 5, timeout: float = 30) -> dict:
    """Seconds from `POST /versions/activate` to every process answering `version` (`streak` times each)."""
    pids = stack.server_pids()
    started = time.monotonic()
    post(stack, "/versions/activate", {"project": project, "version": version, "pin": True})
    first_new: dict[int, float] = {}
    runs = {pid: 0 for pid in pids}
    probes = unattributed = 0
    while min(runs.values()) < streak:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"not every process served {version} after {timeout} s: {runs}")
        pid, served = served_by(stack, project, pids)
        probes += 1
        if pid is None:
            unattributed += 1
            continue
        if served == version:
            first_new.setdefault(pid, time.monotonic() - started)
            runs[pid] += 1
        else:  # an old answer after a new one: that process has not switched for good yet
            first_new.pop(pid, None)
            runs[pid] = 0
    return {
        "version": version,
        "seconds": round(max(first_new.values()), 3),
        "per_process": {str(pid): round(t, 3) for pid, t in sorted(first_new.items())},
        "probes": probes,
        "unattributed_probes": unattributed,
    }


# ---- main ------------------------------------------------------------------------------------------------
def save(result: dict, out: Path) -> None:
    result["machine"]["loadavg_end"] = loadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--annotated", type=int, default=300, help="imported with an annotation (training set)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=PrelabelRequest.batch_size,
        help="the job's batch_size (predict calls, writes, checkpoints; default: the product's)",
    )
    parser.add_argument(
        "--ls-efficient-import",
        action="store_true",
        help=f"run Label Studio with {EFFICIENT_IMPORT_FLAG}=true (its import/predictions then "
        "recounts only the tasks it wrote, not the whole project)",
    )
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="probes before the job (the idle figures)")
    parser.add_argument("--activations", type=int, default=5)
    parser.add_argument(
        "--skip-kill",
        action="store_true",
        help="stop after the job and Label Studio's ceiling (no worker kill, no activations)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "prelabel.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lsml-bench-prelabel-"))
    ls_env = {EFFICIENT_IMPORT_FLAG: "true"} if args.ls_efficient_import else {}
    stack = Stack(tmp, ls_env)
    result: dict[str, Any] = {
        "command": " ".join(["bench/prelabel.py"] + sys.argv[1:]),
        "machine": machine(),
        "tasks": args.tasks,
        "batch_size": args.batch_size,
        "annotated": args.annotated,
        "label_studio_env": ls_env,
        "stack": "Label Studio 1.23.2 (SQLite), redis-server (AOF), gunicorn 2 processes x 4 "
        "threads, 1 label-studio-ml worker; examples/text_classifier",
    }
    try:
        stack.start()
        began = time.monotonic()
        project, tasks = make_project(stack, args.tasks, args.annotated)
        result["import_seconds"] = round(time.monotonic() - began, 1)
        v1 = train(stack, project, 0)
        result["raw_predict"] = raw_rate(stack, project, tasks, args.batch_size)
        print(f"raw predict: {result['raw_predict']}", flush=True)

        probes = start_probes(stack, project)
        time.sleep(args.idle_seconds)
        for probe in probes:
            probe.phase = "job"
        load_before = loadavg()
        job, st, seconds = run_job(stack, {"project": project, "batch_size": args.batch_size})
        for probe in probes:
            probe.phase = "after"
            probe.stopped.set()
        if st["status"] != "finished":
            raise SystemExit(f"the job failed: {st}")
        counts = predictions_per_task(stack, project, v1)
        result["job"] = {
            "model_version": v1,
            "seconds": round(seconds, 2),
            "progress": st["progress"],
            "tasks_per_s": round(args.tasks / seconds, 1),
            "fraction_of_raw": round(args.tasks / seconds / result["raw_predict"]["tasks_per_s"], 4),
            "tasks_with_one_prediction": sum(1 for n in counts.values() if n == 1),
            "duplicate_predictions": sum(n - 1 for n in counts.values() if n > 1),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        }
        result["label_studio_task_list"] = {p: probes[0].summary(p) for p in ("idle", "job")}
        result["live_predict"] = {p: probes[1].summary(p) for p in ("idle", "job")}
        print(
            json.dumps({k: result[k] for k in ("job", "label_studio_task_list", "live_predict")}, indent=1), flush=True
        )

        second, second_tasks = make_project(stack, args.tasks, args.annotated)
        result["ceiling"] = ceiling(stack, project, second, second_tasks, args.batch_size)
        job_figures = result["job"]
        batches = -(-args.tasks // args.batch_size)
        own = st["progress"]
        job_figures["fraction_of_ceiling"] = round(job_figures["tasks_per_s"] / result["ceiling"]["tasks_per_s"], 3)
        job_figures["per_batch_ms"] = {
            "read": round(own["read_seconds"] / batches * 1e3, 1),
            "predict": round(own["predict_seconds"] / batches * 1e3, 1),
            "write": round(own["write_seconds"] / batches * 1e3, 1),
            "rest": round(
                (seconds - own["read_seconds"] - own["predict_seconds"] - own["write_seconds"]) / batches * 1e3, 1
            ),
        }
        print(json.dumps({"ceiling": result["ceiling"], "job": job_figures}, indent=1), flush=True)
        if args.skip_kill:
            save(result, args.out)
            return

        v2 = train(stack, project, 1)
        result["kill_worker_halfway"] = kill_halfway(stack, project, args.tasks, args.batch_size, v2)
        print(json.dumps(result["kill_worker_halfway"], indent=1), flush=True)

        runs = [activation(stack, project, (v1, v2)[i % 2]) for i in range(args.activations)]
        result["activate_to_every_process"] = {
            "runs": runs,
            "median_s": round(statistics.median(r["seconds"] for r in runs), 3),
            "max_s": max(r["seconds"] for r in runs),
            "processes": len(stack.server_pids()),
            "reload_interval_s": 0.5,
        }
        print(json.dumps(result["activate_to_every_process"], indent=1), flush=True)
        save(result, args.out)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
