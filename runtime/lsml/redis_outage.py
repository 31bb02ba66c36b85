"""Riding out a short Redis outage inside a long job (a pre-labelling run on an RQ worker).

Why: a job that writes a checkpoint to Redis after every page would die on
the first write while Redis restarts, and its page in flight would be
predicted again by the next run. A restart of Redis (a pod rescheduled, an
OOM kill) takes seconds; waiting that long is cheaper than failing. The web
server never waits (its client fails fast: 503); only job code calls this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from lsml.errors import RedisUnavailable
from lsml.state import State

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a job keeps retrying a Redis write before it gives up (`RedisUnavailable`, code `redis_outage`).
OUTAGE_GRACE = 60.0
_FIRST_WAIT, _MAX_WAIT = 0.2, 2.0


#: Redis stayed unreachable for longer than the grace period (its old name; `code` "redis_outage").
RedisOutage = RedisUnavailable


def ride_out(action: Callable[[], T], what: str, grace: float = OUTAGE_GRACE) -> T:
    """`action()`, retried with backoff while Redis is unreachable, for up to `grace` seconds."""
    deadline = time.monotonic() + grace
    wait = _FIRST_WAIT
    while True:
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError, RedisUnavailable) as exc:
            if time.monotonic() + wait > deadline:
                raise RedisUnavailable(
                    f"Redis unreachable for more than {grace:.0f} s while {what}", code="redis_outage"
                ) from exc
            logger.warning("Redis unreachable while %s (%s); retrying in %.1f s", what, type(exc).__name__, wait)
            time.sleep(wait)
            wait = min(wait * 2, _MAX_WAIT)


class PatientState:
    """A `State` whose calls ride out a Redis outage (for jobs; never for request threads)."""

    def __init__(self, inner: State, grace: float = OUTAGE_GRACE) -> None:
        self.inner = inner
        self.grace = grace

    def get(self, project: str, key: str, default: Any = None) -> Any:
        return ride_out(lambda: self.inner.get(project, key, default), f"reading state {key!r}", self.grace)

    def set(self, project: str, key: str, value: Any) -> None:
        ride_out(lambda: self.inner.set(project, key, value), f"writing state {key!r}", self.grace)

    def has(self, project: str, key: str) -> bool:
        return ride_out(lambda: self.inner.has(project, key), f"reading state {key!r}", self.grace)

    def delete(self, project: str, key: str) -> None:
        ride_out(lambda: self.inner.delete(project, key), f"deleting state {key!r}", self.grace)

    def items(self, project: str) -> dict[str, Any]:
        return ride_out(lambda: self.inner.items(project), "reading state", self.grace)
