"""lsml.server.gunicorn_worker.request_state: when the main loop hands a buffered request to a pool thread."""

import pytest

from lsml.server.gunicorn_worker import HEAD_LIMIT, PARTIAL, WAIT, WHOLE, request_state

pytestmark = pytest.mark.unit

LIMIT = 1000

BODY = b'{"a": 1}'


@pytest.mark.parametrize(
    "buf, state",
    [
        (b"", WAIT),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", WAIT),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", WHOLE),
        (b"POST /p HTTP/1.1\r\nContent-Length: 8\r\n\r\n" + BODY[:3], WAIT),
        (b"POST /p HTTP/1.1\r\nContent-Length: 8\r\n\r\n" + BODY, WHOLE),
        (b"POST /p HTTP/1.1\r\ncOnTeNt-LeNgTh:  8 \r\n\r\n" + BODY, WHOLE),
        (b"POST /p HTTP/1.1\r\nContent-Length: 8\r\n\r\n" + BODY + b"GET / HTTP/1.1\r\n", WHOLE),  # pipelined
        (b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", PARTIAL),
        (b"POST /p HTTP/1.1\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\r\n", PARTIAL),
        (b"POST /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1), PARTIAL),
        (b"POST /p HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % LIMIT + b"x" * LIMIT, WHOLE),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (HEAD_LIMIT + 1), PARTIAL),  # the parser refuses it
        (b"POST /p HTTP/1.1\r\nContent-Length: nope\r\n\r\n", WHOLE),  # the parser answers 400
    ],
)
def test_request_state(buf, state):
    assert request_state(bytearray(buf), LIMIT) == state
