"""Keep-alive connections are spread over gunicorn workers by least connections (issue 13).

A keep-alive connection stays with the worker that accepted it; with stock gunicorn
8 connections could all land on one of 2 workers (one core busy, the other idle).
"""

from __future__ import annotations

import shutil

import requests

from tests.fixtures.polling import wait_for
from tests.fixtures.proc_tree import established_per_process
from tests.fixtures.started import EXAMPLE, Started


def test_eight_keepalive_connections_split_four_four_over_two_workers(tmp_path):
    backend = tmp_path / "backend"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    server = Started(backend, tmp_path, "--embedded", "--workers", "2")
    sessions = []
    try:
        server.wait_ready()
        # the readiness probes' connections are closed and counted out before ours are counted in
        wait_for(
            lambda: not established_per_process(server.proc.pid, server.port),
            10,
            what="the probes' connections to close",
        )
        for _ in range(8):
            session = requests.Session()
            assert session.get(server.url + "/health", timeout=5).status_code == 200
            sessions.append(session)
        split = established_per_process(server.proc.pid, server.port)
        assert split == [4, 4], f"8 keep-alive connections held per server process: {split}"
    finally:
        for session in sessions:
            session.close()
        server.stop()
