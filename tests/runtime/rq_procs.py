"""Real processes for the RQ tests: a tiny backend, workers and servers started as subprocesses.

Each test owns its processes: `Procs.stop_all()` (the `procs` fixture) ends
them by pid; nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fixtures.polling import wait_http

REPO = Path(__file__).resolve().parents[2]

# A model whose fit is slow on demand, records what it saw, and can fail on demand.
MODEL_PY = """
import json, os, time
from lsml import LabelStudioMLBase


class Counter(LabelStudioMLBase):
    def setup(self):
        self.trained = None
        if self.version_dir is not None:
            self.trained = json.loads((self.version_dir / "model.json").read_text())

    def predict(self, tasks, context=None, **kwargs):
        label = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["A"]}}]
        return [{"result": label, "score": 0.5, "model_version": self.model_version} for _ in tasks]

    def fit(self, event, data, **kwargs):
        log = os.environ.get("TEST_FIT_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "at": "start", "t": time.time(), "event": event}) + "\\n")
        hold = os.environ.get("TEST_FIT_HOLD")  # a file: a fit waits while it exists (the test ends it)
        while hold and os.path.exists(hold):
            time.sleep(0.02)
        barrier = int(os.environ.get("TEST_FIT_BARRIER", "0"))  # wait (60 s at most) until this many fits started
        deadline = time.time() + 60
        while barrier and log and time.time() < deadline:
            with open(log) as f:
                if sum('"at": "start"' in line for line in f) >= barrier:
                    break
            time.sleep(0.02)
        once = os.environ.get("TEST_FIT_SLOW_ONCE")  # the first fit that sees no such file is slow
        if once and not os.path.exists(once):
            open(once, "w").close()
            time.sleep(60)
        time.sleep(float((data or {}).get("sleep", os.environ.get("TEST_FIT_SECONDS", "0"))))
        if (data or {}).get("fail"):
            raise ValueError("no annotations to train on")
        (self.output_dir / "model.json").write_text(json.dumps({"event": event, "data": data}))
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "at": "end", "t": time.time(), "event": event}) + "\\n")
"""


def make_queue(redis_url: str, **settings: object):
    """An RQQueue as a server builds it (`make_queue`), for this Redis (`settings` override Settings fields)."""
    from lsml.settings import Settings
    from lsml.training.rq_queue import RQQueue

    return RQQueue("model:Counter", Settings.from_env(env={}).replace(redis_url=redis_url, **settings))


def write_backend(path: Path) -> Path:
    """A backend dir with model.py (Counter) and a _wsgi.py naming it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(MODEL_PY)
    (path / "_wsgi.py").write_text(
        "from lsml.server import create_app\n\nMODEL = 'model:Counter'\napp = create_app(MODEL)\n"
    )
    return path


def fit_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Procs:
    """Subprocesses started by one test, stopped (by pid) at its end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[subprocess.Popen] = []

    def env(self, backend: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "REDIS_", "MODEL_DIR"))}
        env.update(
            {
                "LSML_MODEL": "model:Counter",
                "MODEL_DIR": str(backend / "data" / "models"),
                "LSML_BACKEND_DIR": str(backend),
                "PYTHONPATH": str(backend),
                "LOG_LEVEL": "INFO",
                # no held-out split: which tasks a fit sees is decided by the tests of it (test_quality_gate.py)
                "LSML_HOLDOUT_FRACTION": "0",
            }
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        env.update(extra)
        return env

    def spawn(
        self, argv: list[str], env: dict[str, str], log_name: str, cwd: Path | None = None, *, new_session: bool = False
    ) -> subprocess.Popen:
        """Start `argv`; `new_session`: as its own process group, so a fault can SIGKILL the whole group."""
        log = open(self.tmp / log_name, "ab")
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )
        log.close()
        self.started.append(proc)
        return proc

    def worker(
        self, backend: Path, redis_url: str, name: str = "worker", new_session: bool = False, **extra: str
    ) -> subprocess.Popen:
        return self.spawn(
            [sys.executable, "-m", "lsml.cli.worker", str(backend)],
            self.env(backend, redis_url, **extra),
            f"{name}.log",
            new_session=new_session,
        )

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def gunicorn_argv(backend: Path, port: int, workers: int = 2) -> list[str]:
    """The server command `label-studio-ml start` and the image run (gunicorn on `_wsgi:app`)."""
    conf = REPO / "runtime" / "lsml" / "server" / "gunicorn_conf.py"
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(conf),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        "4",
        "--chdir",
        str(backend),
        "_wsgi:app",
    ]


def start_server(
    procs: Procs, backend: Path, redis_url: str | None, name: str = "server", workers: int = 2, **extra: str
) -> str:
    """A gunicorn server on a free port; returns its base URL once /healthz answers."""
    from tests.fixtures.ports import free_port

    port = free_port()
    env = procs.env(backend, redis_url, **{"LSML_RELOAD_INTERVAL": "0.2", **extra})
    proc = procs.spawn(gunicorn_argv(backend, port, workers), env, f"{name}.log", cwd=backend)
    url = f"http://127.0.0.1:{port}"

    def died() -> str | None:
        return None if proc.poll() is None else f"exit code {proc.returncode}; log:\n{procs.log(name)[-3000:]}"

    wait_http(url + "/healthz", 60, name, died=died, interval=0.1)  # /healthz: open with Basic auth on too
    return url
