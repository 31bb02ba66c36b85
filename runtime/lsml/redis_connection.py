"""The one place lsml builds a Redis client (state, RQ queue, worker).

A web server's client fails fast: a request thread must answer 503 within about a second when
Redis is gone, not block or retry with backoff (redis-py reconnects by itself on the next command
once Redis is back). The RQ worker waits on blocking reads and has its own reconnect loop, so it
asks for no socket timeout and redis-py's default retries (`fail_fast=False`).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Socket timeouts of the web server's Redis client: a request thread never
#: waits longer than this for a Redis that is gone.
SOCKET_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5


def connect(
    redis_url: str,
    socket_timeout: float | None = SOCKET_TIMEOUT,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    fail_fast: bool = True,
) -> redis.Redis:
    """A Redis client for `redis_url`; with `fail_fast`, no retries (seconds on the request path)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 10,
    }
    if fail_fast:
        options.update(retry_on_timeout=False, retry=Retry(NoBackoff(), 0))
    return redis.Redis.from_url(redis_url, **options)
