"""`label-studio-ml start NAME` as the full local stack: its own redis-server, an RQ worker, gunicorn.

(REDIS_URL given is covered by test_cli_start.py; here no REDIS_URL.)
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fixtures.label_studio import SENTIMENT_CONFIG as TEXT_CONFIG
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.rq_procs import write_backend

pytestmark = pytest.mark.redis

CLI = str(Path(sys.executable).parent / "label-studio-ml")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), to check nothing outlives `start`."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(backend: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [CLI, "start", str(backend), "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, proc.stdout.read()
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, 90, interval=0.2, what="start to serve")
    return proc, url


def base_env(backend: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "REDIS_", "MODEL_DIR", "PROMETHEUS"))}
    env["LSML_MODEL"] = "model:Counter"
    return env


def test_start_runs_its_own_redis_a_worker_and_the_server_and_stops_them_all(tmp_path):
    backend = write_backend(tmp_path / "backend")
    proc, url = start(backend, base_env(backend))
    try:
        children = descendants(proc.pid)
        assert len(children) >= 4, "redis-server, worker, gunicorn master and workers"
        r = requests.post(
            url + "/webhook",
            json={"action": "START_TRAINING", "project": {"id": 1, "label_config": TEXT_CONFIG}},
            timeout=5,
        )
        assert r.status_code == 201
        job = r.json()["job"]

        def done():
            st = requests.post(url + "/job_status", json={"job": job}, timeout=5).json()
            return st if st["status"] in ("finished", "failed") else None

        st = wait_for(done, 60, interval=0.2, what="the training")
        assert st["status"] == "finished" and st["model_version"] == "v1"
        logs = backend / "logs"
        assert {"server.log", "worker.log", "redis.log"} <= {p.name for p in logs.iterdir()}
        assert job in (logs / "worker.log").read_text(), "the training ran in the RQ worker"
        redis_dir = backend / "data" / "redis"
        assert any(p.name.startswith("appendonly") for p in redis_dir.iterdir()), "AOF in NAME/data/redis"
        assert "Ready to accept connections" in (logs / "redis.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert "redis-server on 127.0.0.1:" in out
    wait_for(lambda: not any(alive(p) for p in children), 10, what="every child to exit")


def test_start_without_redis_server_falls_back_to_embedded_training_and_says_so(tmp_path):
    backend = write_backend(tmp_path / "backend")
    env = base_env(backend)
    empty = tmp_path / "bin"
    empty.mkdir()
    env["PATH"] = str(empty)  # no redis-server anywhere
    proc, url = start(backend, env)
    try:
        r = requests.post(
            url + "/webhook",
            json={"action": "START_TRAINING", "project": {"id": 1, "label_config": TEXT_CONFIG}},
            timeout=5,
        )
        job = r.json()["job"]
        wait_for(
            lambda: requests.post(url + "/job_status", json={"job": job}, timeout=5).json(),
            60,
            interval=0.2,
            what="the embedded training",
            until=lambda st: st["status"] == "finished",
        )
        assert not (backend / "logs" / "worker.log").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert "embedded" in out and "redis-server" in out, out  # says why and what to install


def proc_text(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_start_gives_its_redis_a_random_password_kept_out_of_logs_and_ps(tmp_path):
    import redis

    backend = write_backend(tmp_path / "backend")
    proc, url = start(backend, base_env(backend))
    try:
        children = descendants(proc.pid)
        assert any("redis-server" in proc_text(p, "cmdline") for p in children)
        urls = {
            line.split("=", 1)[1]
            for p in children
            for line in proc_text(p, "environ").split()
            if line.startswith("REDIS_URL=")
        }
        assert len(urls) == 1, urls
        parsed = redis.connection.parse_url(urls.pop())
        password, port = parsed.get("password"), parsed["port"]
        assert password and len(password) >= 32, "the private redis-server must have a password"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).ping()  # NOAUTH
        assert redis.Redis(host="127.0.0.1", port=port, password=password).ping()
        r = requests.post(
            url + "/webhook",
            json={"action": "START_TRAINING", "project": {"id": 1, "label_config": TEXT_CONFIG}},
            timeout=5,
        )
        job = r.json()["job"]
        st = wait_for(
            lambda: requests.post(url + "/job_status", json={"job": job}, timeout=5).json(),
            60,
            interval=0.2,
            what="the training",
            until=lambda st: st["status"] in ("finished", "failed"),
        )
        assert st["status"] == "finished", st
        for pid in children:
            assert password not in proc_text(pid, "cmdline"), f"password on the command line of {pid}"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert password not in ps
        config_files = [p for p in (backend / "data" / "redis").iterdir() if p.suffix == ".conf"]
        assert config_files == [], "the 0600 config file is removed once Redis listens"
        # the AOF holds /setup's tokens: its directory is this user's alone (umask 022 would give 0755)
        assert stat.S_IMODE((backend / "data" / "redis").stat().st_mode) == 0o700
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert password not in out
    for log in (backend / "logs").iterdir():
        assert password not in log.read_text(errors="replace"), log.name
