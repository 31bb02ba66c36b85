"""Misbehaving HTTP clients and a well-behaved latency probe, over real loopback sockets.

Why a module of its own: the slow-client tests (test_serving_slow_clients.py) and the
stop-under-load test (test_serving_stop.py) attack the same real server the same way.
Every client here is bounded: a fixed number of sockets, requests and seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import requests

WEBHOOK_BODY = b'{"action": "PROJECT_UPDATED", "project": {"id": 1}}'


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def never_closing(port: int) -> tuple[socket.socket, bytes | None]:
    """A whole request with `Connection: close`, then the client neither reads nor closes."""
    sock = _open(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return sock, None


def slow_headers(port: int) -> tuple[socket.socket, bytes | None]:
    """Slow-loris: a request line and one header, then one more header byte now and then, never the blank line."""
    sock = _open(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    return sock, b"X-a: b\r\n"


def slow_body(port: int) -> tuple[socket.socket, bytes | None]:
    """Complete headers announcing a body that then arrives a byte now and then, never in full."""
    sock = _open(port)
    sock.sendall(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n" + WEBHOOK_BODY[:10]
    )
    return sock, b" "


def slow_reader(port: int) -> tuple[socket.socket, bytes | None]:
    """Keep-alive requests for the 12 KB OpenAPI document, pipelined; the client never reads a byte of the answers.

    400 answers (~4.8 MB) are more than a loopback socket's buffers hold (the server's
    send buffer grows to `tcp_wmem`'s 4 MB at most), so the server must wait for this
    client to read.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window from the start
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    try:
        sock.settimeout(2)
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
    except OSError:
        pass  # the server stopped reading us: what a slow reader causes
    return sock, None


ATTACKS = {
    "never_closing": never_closing,
    "slow_headers": slow_headers,
    "slow_body": slow_body,
    "slow_reader": slow_reader,
}


@dataclass
class Attack:
    """`count` sockets of one kind, opened `spacing` s apart, trickling a byte every `trickle` s until closed.

    After opening them it waits `settle` s, so the probe measures a server that holds
    these clients, not one still busy with their first requests.
    """

    port: int
    kind: str
    count: int = 50
    spacing: float = 0.01
    trickle: float = 0.5
    settle: float = 1.0
    sockets: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Attack:
        opener = ATTACKS[self.kind]
        drip = None
        for _ in range(self.count):
            sock, drip = opener(self.port)
            self.sockets.append(sock)
            time.sleep(self.spacing)
        time.sleep(self.settle)  # the answers the server could send are sent: now it can only wait for us
        if drip:
            self._thread = threading.Thread(target=self._drip, args=(drip,), daemon=True)
            self._thread.start()
        return self

    def _drip(self, data: bytes) -> None:
        i = 0
        while not self._stop.wait(self.trickle):
            for sock in self.sockets:
                try:
                    sock.send(data[i % len(data) : i % len(data) + 1])
                except OSError:
                    pass
            i += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@dataclass
class Probe:
    """What a well-behaved client saw: latencies (s) of the answered requests and the failures."""

    latencies: list[float]
    failures: list[str]

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("inf")
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def probe(url: str, count: int = 300, seconds: float = 10.0, timeout: float = 5.0) -> Probe:
    """`count` GETs of `url` (or as many as fit in `seconds`), alternating a kept-alive and a fresh connection."""
    latencies: list[float] = []
    failures: list[str] = []
    session = requests.Session()
    deadline = time.monotonic() + seconds
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                failures.append(f"only {i} of {count} requests in {seconds}s")
                break
            started = time.perf_counter()
            try:
                r = session.get(url, timeout=timeout) if i % 2 else requests.get(url, timeout=timeout)
                if r.status_code != 200:
                    failures.append(f"status {r.status_code}")
                    continue
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - started)
    finally:
        session.close()
    return Probe(latencies, failures)
