"""The local production stack of `label-studio-ml start`: redis-server, one RQ worker, gunicorn.

Why: background training needs all three running together. One foreground
process supervises them (no supervisord to install or configure), writes
their output to `NAME/logs/` (`redis.log`, `worker.log`, `server.log`) and
stops them all on Ctrl-C or SIGTERM, so a laptop gets the real
background-training setup with nothing to install but Debian's `redis-server`.

* `REDIS_URL` given: no local Redis; the worker and server use that one.
* no `REDIS_URL`, `redis-server` on PATH: a private Redis bound to
  127.0.0.1 on a free port, data in `NAME/data/redis` with AOF on, so queued
  trainings survive a restart of the stack. It gets a random password per
  start (`requirepass`, from a 0600 config file, never on a command line),
  which the worker and the server receive in REDIS_URL in their environment.
* neither: no Redis and no worker; the server trains with the embedded
  runner, and the stack says so.

Children get `PR_SET_PDEATHSIG` (Linux), so even a `kill -9` of the
supervisor leaves no orphan behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lsml import setting_names
from lsml.procs import die_with_parent

STOP_TIMEOUT = 30.0  # above gunicorn's graceful_timeout (lsml.server.gunicorn_conf)
REDIS_CONFIG_NAME = ".lsml-redis.conf"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent_term() -> None:
    die_with_parent(signal.SIGTERM)


def _redis_config(data_dir: Path, password: str) -> Path:
    """A config file only this user can read, holding `requirepass`.

    Why a file: a password on redis-server's command line shows in `ps` to
    every user of the machine. The file is created 0600 (never a moment
    wider) and removed once the server listens; the worker and the server get
    the password only inside REDIS_URL in their environment.
    """
    path = data_dir / REDIS_CONFIG_NAME
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"requirepass {password}\n")
    return path


@dataclass
class Child:
    """One supervised process and its log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    terminated: bool = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab", buffering=0)
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=_die_with_parent_term if sys.platform.startswith("linux") else None,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the children in order
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM, once: a second one is RQ's cold shutdown (the running fit killed)."""
        if self.process is not None and self.alive() and not self.terminated:
            self.terminated = True
            self.process.terminate()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (graceful: RQ finishes bookkeeping, Redis flushes AOF), then SIGKILL; then its whole group.

        The last step catches what the child left behind (a gunicorn worker whose
        master died, an RQ work horse): every child leads its own process group.
        """
        if self.process is None:
            return
        if self.alive():
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class LocalStack:
    """Redis (optional), worker (optional) and server, started and stopped together."""

    backend_dir: Path
    server_argv: Sequence[str]
    worker_argv: Sequence[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    redis_binary: str | None = field(default_factory=lambda: shutil.which("redis-server"))
    say: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    children: list[Child] = field(default_factory=list)
    redis_url: str | None = None

    @property
    def logs_dir(self) -> Path:
        return self.backend_dir / "logs"

    def start(self) -> None:
        """Start what this machine allows; raise (after cleaning up) if a part fails to come up."""
        try:
            self.redis_url = self.env.get(setting_names.REDIS_URL) or None
            if self.redis_url is None and self.redis_binary:
                self.redis_url = self._start_redis()
            if self.redis_url is None:
                self.say(
                    "redis-server not found and REDIS_URL unset: training runs in the server "
                    "process (embedded runner). Install redis-server for background training."
                )
                self.env.pop(setting_names.REDIS_URL, None)
            else:
                self.env[setting_names.REDIS_URL] = self.redis_url
                self._spawn("worker", list(self.worker_argv))
            self._spawn("server", list(self.server_argv))
            self.say(f"logs in {self.logs_dir}/ (" + ", ".join(f"{c.name}.log" for c in self.children) + ")")
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.logs_dir / f"{name}.log", dict(self.env))
        child.start()
        self.children.append(child)
        return child

    def _start_redis(self) -> str:
        """A private redis-server with a password made for this start (see `_redis_config`)."""
        data_dir = self.backend_dir / "data" / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        # its AOF holds /setup's Label Studio tokens in the clear, and Redis writes it with the umask's mode (0644
        # here): like the SQLite state (0600 in a 0700 directory), only this user may enter the directory
        data_dir.chmod(0o700)
        port = free_port()
        password = secrets.token_urlsafe(32)
        config = _redis_config(data_dir, password)
        try:
            self._spawn(
                "redis",
                [
                    str(self.redis_binary),
                    str(config),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dir",
                    str(data_dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not self.children[-1].alive():
                    raise RuntimeError(f"redis-server exited at start; see {self.logs_dir / 'redis.log'}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.05)
            else:
                raise RuntimeError(f"redis-server did not listen on 127.0.0.1:{port} within 20s")
        finally:
            config.unlink(missing_ok=True)  # read at start-up; the password lives on only in the env
        self.say(f"redis-server on 127.0.0.1:{port}, data in {data_dir} (AOF on, password set for this run)")
        return f"redis://:{password}@127.0.0.1:{port}/0"

    def wait(self) -> int:
        """Block until SIGINT/SIGTERM or until a child dies; stop everything; return an exit code."""
        stop_requested = False

        def on_signal(signum, _frame) -> None:
            nonlocal stop_requested
            stop_requested = True

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop_requested:
                dead = [c for c in self.children if not c.alive()]
                if dead:
                    for c in dead:
                        code = c.process.returncode if c.process is not None else None
                        self.say(f"{c.name} exited with code {code}; see {c.log_path}")
                    return 1
                time.sleep(0.2)
            self.say("stopping " + ", ".join(c.name for c in reversed(self.children)))
            return 0
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        """Server and worker together, Redis last (once nothing writes to it).

        Together, so a stop takes the longer of their graceful ends, not the sum: a server
        draining slow clients for gunicorn's graceful_timeout and then a worker finishing its
        fit overran a 30 s bound under load. A job the server queues meanwhile stays in Redis
        (AOF) for the next start.
        """
        apps = [c for c in self.children if c.name != "redis"]
        for child in apps:
            child.terminate()
        for child in reversed(self.children):
            child.stop()
