"""Slow or stuck clients cost only their own connection (issue 13), against `label-studio-ml start` for real.

Each test holds 50 misbehaving sockets of one kind open against the running
server while a well-behaved client sends a fixed number of `/health`
requests (bounded in count and time, loopback only); every one of its requests
must be answered and its p99 stay under 50 ms. On a machine so loaded that the
same client's p99 without any attacker (measured just before) is already above
25 ms, the bound is twice that baseline instead; and the p99 (the 3rd worst of 300)
gets up to 3 tries, because other jobs on this shared 2-core machine stall every
process now and then. A frozen server fails either way: its clients time out after
seconds, and any failed request fails the test at once.
"""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.fixtures.slow_clients import Attack, probe
from tests.fixtures.started import EXAMPLE, Started

P99_LIMIT_MS = 50.0


def held_while(url: str, attack: Attack) -> None:
    """Assert the normal client is served while `attack` holds its sockets (see the module docstring)."""
    tries = []
    with attack:
        for _ in range(3):
            limit, baseline = limit_ms(url)
            seen = probe(url, count=300, seconds=15)
            assert not seen.failures, f"{attack.kind}: {len(seen.failures)} failed, e.g. {seen.failures[:3]}"
            tries.append(f"p99 {seen.p99_ms():.1f} ms (limit {limit:.1f}, without attackers {baseline:.1f})")
            if seen.p99_ms() < limit:
                return
    raise AssertionError(f"{attack.kind}: over {len(tries)} tries of 300 requests: " + "; ".join(tries))


def limit_ms(url: str) -> tuple[float, float]:
    """(the p99 bound, the baseline p99) for this machine right now."""
    baseline = probe(url, count=300, seconds=15)
    assert not baseline.failures, baseline.failures[:3]
    return max(P99_LIMIT_MS, 2 * baseline.p99_ms()), baseline.p99_ms()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    backend = tmp_path_factory.mktemp("slow") / "backend"
    shutil.copytree(EXAMPLE, backend, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    started = Started(backend, backend.parent, "--embedded")
    try:
        started.wait_ready()  # measured against a settled server: model class imported
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("kind", ["never_closing", "slow_headers", "slow_body"])
def test_fifty_slow_clients_do_not_slow_down_a_normal_one(server, kind):
    held_while(server.url + "/health", Attack(server.port, kind, count=50))
    # the server is still whole once the attackers are gone
    assert requests.get(server.url + "/health", timeout=5).json()["status"] == "UP"


def test_clients_that_do_not_read_their_answers_do_not_slow_down_a_normal_one(server):
    """10 sockets (more than a worker's 8 threads) each owed ~4.8 MB of answers they never read.

    Serving the ~4 MB each takes before the buffers are full costs seconds of CPU on a
    loaded machine, hence the 5 s settle before measuring.
    """
    held_while(server.url + "/health", Attack(server.port, "slow_reader", count=10, settle=5.0))
    assert requests.get(server.url + "/health", timeout=5).json()["status"] == "UP"


def _exchange(port: int, data: bytes, answers: int) -> bytes:
    """Send raw bytes, read until `answers` HTTP answers arrived (or 10 s passed)."""
    import socket

    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        while got.count(b"HTTP/1.1 ") < answers:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def test_pipelined_chunked_and_expect_continue_requests_are_answered(server):
    """The paths where the main loop cannot buffer everything first still serve (a thread reads the rest)."""
    body = b'{"action": "PROJECT_UPDATED", "project": {"id": 1}}'
    pipelined = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _exchange(server.port, pipelined, 3).count(b"HTTP/1.1 200") == 3
    chunked = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    )
    answer = _exchange(server.port, chunked, 1)
    assert answer.startswith(b"HTTP/1.1 200") and b'"ignored"' in answer
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def _read_answers(sock, count: int) -> list[tuple[bytes, bytes]]:
    """`count` HTTP answers (status line, body) read off `sock`, by their Content-Length."""
    import re

    buf, answers = b"", []
    while len(answers) < count:
        end = buf.find(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:end]) if end >= 0 else None
        if length is not None and len(buf) >= end + 4 + int(length.group(1)):
            stop = end + 4 + int(length.group(1))
            answers.append((buf[: buf.find(b"\r\n")], buf[end + 4 : stop]))
            buf = buf[stop:]
            continue
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {len(answers)} answers"
        buf += chunk
    assert not buf, f"bytes after the answers: {buf!r}"
    return answers


def test_requests_sent_while_the_previous_one_is_served_are_answered_in_order(server):
    """A request whose bytes arrive while a pool thread still serves the previous one on the same connection.

    The pool thread that answered puts a kept-alive connection back among the waiting ones
    itself, unless bytes arrived meanwhile (then the main loop takes it back). Which of the
    two happens depends on timing, so each round sends its second request right after the
    first, without waiting for the answer, and accepts either path; a connection lost
    between them would leave an answer missing (the read times out) or out of order.
    """
    import json
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(200):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            (status1, body1), (status2, body2) = _read_answers(sock, 2)
            assert status1 == status2 == b"HTTP/1.1 200 OK"
            assert json.loads(body1)["status"] == "UP" and json.loads(body2)["status"] == "ready"
