"""tests/fixtures/polling.py: what a timeout says, what ends a wait early, and an HTTP wait on a real server."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.polling import wait_for, wait_http

pytestmark = pytest.mark.unit


def test_returns_the_first_good_value():
    calls = []
    assert wait_for(lambda: calls.append(1) or len(calls), 1, 0.01, until=lambda n: n == 3) == 3


def test_the_last_sleep_ends_at_the_deadline_and_one_more_check_follows():
    calls = []
    began = time.monotonic()
    assert wait_for(lambda: calls.append(1) or len(calls) == 2, 0.2, interval=5) is True
    assert 0.2 <= time.monotonic() - began < 1


def test_a_timeout_names_what_was_awaited_and_the_last_value():
    with pytest.raises(pytest.fail.Exception, match=r"waiting for version v2; last value: 'v1'"):
        wait_for(lambda: "v1", 0.1, 0.02, what="version v2", until=lambda v: v == "v2")


def test_errors_in_retry_on_are_polled_through_and_reported():
    with pytest.raises(pytest.fail.Exception, match=r"last error: ConnectionError: refused"):
        wait_for(lambda: (_ for _ in ()).throw(ConnectionError("refused")), 0.1, 0.02, retry_on=(OSError,))


def test_any_other_error_ends_the_wait_at_once():
    began = time.monotonic()
    with pytest.raises(KeyError):
        wait_for(lambda: {}["missing"], 5, 0.02, retry_on=(OSError,))
    assert time.monotonic() - began < 1


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server on a free loopback port whose GET answers the next status of a list."""
    statuses = [503, 503, 200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(statuses.pop(0) if len(statuses) > 1 else statuses[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", statuses
    finally:
        server.shutdown()
        server.server_close()


def test_wait_http_returns_the_first_200(http_server):
    url, statuses = http_server
    assert wait_http(url, 10, "the server", interval=0.01).status_code == 200
    assert statuses == [200]


def test_wait_http_fails_at_once_when_the_process_died(http_server):
    url, _ = http_server
    began = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"the server exited before answering 200 at .*: exit code 3"):
        wait_http(url, 10, "the server", died=lambda: "exit code 3", interval=0.01)
    assert time.monotonic() - began < 1


def test_diagnose_runs_on_a_timeout_only_and_ends_the_message():
    asked = []
    with pytest.raises(pytest.fail.Exception, match=r"last value: 0\nthe log's tail$"):
        wait_for(lambda: 0, 0.05, 0.01, diagnose=lambda: asked.append(1) or "the log's tail")
    assert asked == [1]
    assert wait_for(lambda: 1, 1, diagnose=lambda: asked.append(2) or "") == 1 and asked == [1]
