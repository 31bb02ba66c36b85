"""A stop under load leaves no process behind and frees the port (issue 13), with `label-studio-ml start` for real.

The stack runs the example text classifier; four client threads hammer /predict,
/webhook (trainings) and /health, and 40 never-closing and slow-loris sockets are
open, when the CLI gets SIGTERM. Every process it had started (gunicorn master and
workers, and with Redis: redis-server, the RQ worker) must be gone within
`STOP_BOUND` seconds, and a new server must be able to bind the port.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest
import requests

from tests.fixtures.label_studio import SENTIMENT_CONFIG as CONFIG
from tests.fixtures.polling import wait_for
from tests.fixtures.proc_tree import descendants, port_is_free, still_running
from tests.fixtures.slow_clients import Attack
from tests.fixtures.started import EXAMPLE, Started

STOP_BOUND = 30.0  # gunicorn's graceful_timeout (20 s) plus the time to stop the worker and Redis


def stack_logs(backend, processes: dict[int, int]) -> str:
    """The last lines of what each process of the stack logged (`start` writes them to NAME/logs/), after
    asking the RQ worker, if it still runs, for its threads' stacks (`label-studio-ml worker` dumps them on
    SIGUSR1)."""
    for line in still_running(processes):
        if "worker_command" in line:
            os.kill(int(line.split()[0]), signal.SIGUSR1)
            time.sleep(1)
    return "\n".join(
        f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        for log in sorted((backend / "logs").glob("*.log"))
    )


class Load:
    """Client threads looping over /predict, /webhook and /health until stopped; counts what got answered."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answered = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def _loop(self, index: int) -> None:
        session = requests.Session()
        task = 0
        while not self._stop.is_set():
            task += 1
            try:
                if task % 3 == 0:
                    r = session.post(
                        self.url + "/predict",
                        timeout=5,
                        json={
                            "tasks": [{"id": task, "data": {"text": "great fun"}}],
                            "project": "1.1",
                            "label_config": CONFIG,
                        },
                    )
                elif task % 3 == 1:
                    r = session.post(
                        self.url + "/webhook",
                        timeout=5,
                        json={
                            "action": "ANNOTATION_CREATED",
                            "project": {"id": 1, "label_config": CONFIG},
                            "task": {"id": index * 100_000 + task, "data": {"text": f"text {task}"}},
                            "annotation": {
                                "id": task,
                                "result": [
                                    {
                                        "from_name": "sentiment",
                                        "to_name": "text",
                                        "type": "choices",
                                        "value": {"choices": ["Positive" if task % 2 else "Negative"]},
                                    }
                                ],
                            },
                        },
                    )
                else:
                    r = requests.get(self.url + "/health", timeout=5)
                if r.status_code < 500:
                    self.answered += 1
            except requests.RequestException:
                time.sleep(0.01)
        session.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


@pytest.mark.parametrize("mode, how", [("embedded", "SIGTERM"), ("embedded", "Ctrl-C"), ("redis", "Ctrl-C")])
def test_a_stop_under_load_leaves_no_process_behind_and_frees_the_port(tmp_path, mode, how):
    """SIGTERM: to the CLI alone (systemd, docker stop); Ctrl-C: SIGINT to its whole process group, as a terminal does."""
    if mode == "redis" and not shutil.which("redis-server"):
        pytest.fail("redis-server is not on PATH (hack/install-system-deps.sh installs it)")
    backend = tmp_path / "backend"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    server = Started(
        backend, tmp_path, *(["--embedded"] if mode == "embedded" else ["--workers", "2"]), new_session=True
    )
    processes: dict[int, int] = {}
    try:
        server.wait_ready()
        with (
            Load(server.url) as load,
            Attack(server.port, "never_closing", count=20, settle=0),
            Attack(server.port, "slow_headers", count=20, settle=0),
        ):
            expected = 2 if mode == "embedded" else 5  # gunicorn master + worker(s) [+ redis-server, RQ worker]
            # under load: answers coming back, and every process of the stack up
            wait_for(lambda: load.answered > 0, 30, what="the load to get an answer")
            processes = wait_for(
                lambda: descendants(server.proc.pid), 30, until=lambda p: len(p) >= expected, what="the whole stack"
            )
            stopped_at = time.monotonic()
            if how == "SIGTERM":
                server.proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(server.proc.pid, signal.SIGINT)
            wait_for(
                lambda: (server.proc.poll(), still_running(processes)),
                STOP_BOUND,
                0.1,
                what=f"the CLI (exit code, first) and every process it started (still running, second) to end "
                f"after {how}",
                until=lambda ended: ended[0] is not None and not ended[1],
                diagnose=lambda: stack_logs(backend, processes),
            )
            took = time.monotonic() - stopped_at
        assert server.proc.returncode == 0, server.stop()
        assert took < STOP_BOUND
        assert port_is_free(server.port), f"port {server.port} still taken after the stop"
    finally:
        server.stop()
        for line in still_running(processes):  # what this test started and a failed stop left behind
            os.kill(int(line.split()[0]), signal.SIGKILL)
