"""What `label-studio-ml start` runs: gunicorn serving a backend dir, plus Redis and an RQ worker when available.

The processes are supervised by `lsml.cli.stack.LocalStack` (one foreground
loop; Ctrl-C or SIGTERM stops them all; logs in `NAME/logs/`).

Training mode:

* `REDIS_URL` set, or `redis-server` on PATH (a private one is started):
  trainings run in an RQ worker process; default 2 gunicorn workers.
* `--embedded` or no Redis at all: trainings run in a thread of the server
  process (`EmbeddedQueue`); the default is then **one** gunicorn worker,
  because each worker would otherwise run its own queue (the store's
  training lock keeps them from training one project at the same time, but
  `/job_status` would only know the jobs of the worker that took them).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lsml import setting_names
from lsml.backend_dir import BackendDirError, model_ref
from lsml.settings import ServingSettings, Settings


@dataclass
class StartOptions:
    backend_dir: Path
    host: str = "127.0.0.1"  # only this machine: expose the backend on purpose (--host), with BASIC_AUTH_*
    port: int = 9090
    workers: int | None = None  # None: $WORKERS, else 2 with Redis, 1 with embedded training
    threads: int | None = None  # None: $THREADS, else 8
    embedded: bool = False
    log_level: str | None = None


def check_backend(backend_dir: Path) -> str:
    """The backend's model ref; BackendDirError when the dir is not a backend."""
    if not backend_dir.is_dir():
        raise BackendDirError(
            f"backend directory {backend_dir} does not exist "
            "(create one with `label-studio-ml init NAME --script model.py`)"
        )
    return model_ref(backend_dir)


def backend_env(options: StartOptions, base: dict | None = None) -> dict:
    """The environment of the server and worker processes."""
    env = dict(os.environ if base is None else base)
    backend = options.backend_dir.resolve()
    env[setting_names.LSML_BACKEND_DIR] = str(backend)
    env.setdefault(setting_names.MODEL_DIR, str(backend / "data" / "models"))
    env[setting_names.MODEL_DIR] = str(Path(env[setting_names.MODEL_DIR]).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    if options.log_level:
        env[setting_names.LOG_LEVEL] = options.log_level.upper()
    if options.embedded:
        env.pop(setting_names.REDIS_URL, None)
    prom = Path(env.get(setting_names.PROMETHEUS_MULTIPROC_DIR) or backend / "data" / "prometheus")
    if prom.is_dir():  # stale files of a previous run would add up into this run's counters
        shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True, exist_ok=True)
    env[setting_names.PROMETHEUS_MULTIPROC_DIR] = str(prom)
    return env


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: whatever it resolves to, assume it is reachable from elsewhere
        return False


def exposure_warning(options: StartOptions, settings: Settings) -> str | None:
    """The start-up warning for a server anyone on the network can call without credentials, else None."""
    if settings.basic_auth_enabled or is_loopback(options.host):
        return None
    return (
        f"WARNING: serving on {options.host}:{options.port} without authentication: anyone who can reach "
        "this port can call /setup, /predict and /webhook. Set BASIC_AUTH_USER and BASIC_AUTH_PASS "
        "(and give Label Studio the same credentials), or bind --host 127.0.0.1"
    )


def will_use_redis(options: StartOptions, env: dict) -> bool:
    return not options.embedded and bool(env.get(setting_names.REDIS_URL) or shutil.which("redis-server"))


def server_argv() -> list[str]:
    """gunicorn with lsml's one serving config; the knobs travel in the environment (`serving_env`)."""
    from lsml.server.gunicorn_conf import SERVE_COMMAND

    return [sys.executable, "-m", *SERVE_COMMAND]


def serving_env(options: StartOptions, workers: int, log_level: str) -> dict[str, str]:
    """The `ServingSettings` variables for this start (the image and the operator set the same ones).

    `LOG_LEVEL` is a Python level name, upper case: the model's own code reads it too. A reference
    SDK `_wsgi.py` passes it to `logging.config.dictConfig` at import, which knows `INFO` but not
    `info` ("Unable to configure handler 'console'" in every worker); gunicorn takes either case.
    """
    return {
        setting_names.HOST: options.host,
        setting_names.PORT: str(options.port),
        setting_names.WORKERS: str(workers),
        setting_names.THREADS: str(options.threads or ServingSettings().threads),
        setting_names.LOG_LEVEL: log_level.upper(),
        setting_names.LSML_BACKEND_DIR: str(options.backend_dir.resolve()),
    }


def worker_counts(options: StartOptions, env: Mapping[str, str], redis: bool) -> tuple[int, int]:
    """(gunicorn workers, threads per worker): the flags, else `WORKERS` / `THREADS`, else the defaults.

    The environment variables are the ones the reference SDK's Dockerfile passes to gunicorn
    (`--workers $WORKERS --threads $THREADS`): a backend moved over keeps its sizing. A bad
    value stops `start` with a message (ValueError, exit 2).
    """
    serving = ServingSettings.from_env(
        {name: env.get(name) or "" for name in (setting_names.WORKERS, setting_names.THREADS)}
    )
    workers = options.workers or (
        serving.workers if (env.get(setting_names.WORKERS) or "").strip() else (2 if redis else 1)
    )
    return workers, options.threads or serving.threads


def worker_argv(options: StartOptions) -> list[str]:
    return [sys.executable, "-m", "lsml.cli.worker_command", str(options.backend_dir.resolve())]


def start(options: StartOptions) -> int:
    """Run the backend until Ctrl-C/SIGTERM or until a process dies; returns the exit code."""
    from lsml.cli.stack import LocalStack

    ref = check_backend(options.backend_dir)
    env = backend_env(options)
    settings = Settings.from_env(env)  # a bad setting (e.g. a user without a password) stops here, exit 2
    warning = exposure_warning(options, settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    redis = will_use_redis(options, env)
    workers, threads = worker_counts(options, env, redis)
    options = dataclasses.replace(options, workers=workers, threads=threads)
    if not redis and workers > 1:
        print(
            f"note: embedded training with {workers} workers: each worker runs its own training queue "
            "(set REDIS_URL or install redis-server for one shared queue)",
            file=sys.stderr,
        )
    log_level = options.log_level or env.get(setting_names.LOG_LEVEL) or "INFO"
    env.update(serving_env(options, workers, log_level))

    def say(message: str) -> None:
        if not redis and message.startswith("redis-server not found"):
            message = "embedded training: trainings run in the server process"
            if not options.embedded:
                message += " (install redis-server or set REDIS_URL for a background RQ worker)"
        print(message, file=sys.stderr, flush=True)

    stack = LocalStack(
        say=say,
        backend_dir=options.backend_dir.resolve(),
        server_argv=server_argv(),
        worker_argv=worker_argv(options),
        env=env,
        redis_binary=shutil.which("redis-server") if redis else None,
    )
    print(
        f"serving {ref} from {options.backend_dir.resolve()} on http://{options.host}:{options.port} "
        f"({workers} worker(s) x {options.threads} threads, MODEL_DIR={env[setting_names.MODEL_DIR]})",
        file=sys.stderr,
        flush=True,
    )
    stack.start()
    return stack.wait()
