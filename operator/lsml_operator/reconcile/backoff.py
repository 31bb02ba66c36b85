"""Exponential backoff of Label Studio calls, per MLBackend.

A registration (or deregistration) that failed is not tried again on every child event:
the next attempt waits ``base * 2**(failures-1)`` seconds, capped at ``max``; the timer
(``Trigger.RETRY``) comes back when that time has passed. The clock is injectable so the
schedule is unit-tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..keys import Key


class Backoff:
    """Failures and the time of the next allowed attempt, for each MLBackend with a failure."""

    def __init__(self, base_seconds: float, max_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base_seconds
        self.max = max_seconds
        self.clock = clock
        self._guard = threading.Lock()
        self._state: dict[Key, tuple[int, float]] = {}  # failures, clock time of the next attempt

    def failed(self, key: Key) -> float:
        """Count one more failure; return the delay until the next attempt."""
        with self._guard:
            failures = self._state.get(key, (0, 0.0))[0] + 1
            delay = min(self.base * 2.0 ** (failures - 1), self.max)
            self._state[key] = (failures, self.clock() + delay)
        return delay

    def succeeded(self, key: Key) -> None:
        self.forget(key)

    def forget(self, key: Key) -> None:
        with self._guard:
            self._state.pop(key, None)

    def failures(self, key: Key) -> int:
        with self._guard:
            return self._state.get(key, (0, 0.0))[0]

    def allowed(self, key: Key) -> bool:
        """Whether an attempt may be made now (no failure, or its delay is over)."""
        with self._guard:
            failures, next_at = self._state.get(key, (0, 0.0))
        return failures == 0 or self.clock() >= next_at

    def due(self, key: Key) -> bool:
        """Whether a failed attempt is waiting for the timer now (its delay is over)."""
        with self._guard:
            failures, next_at = self._state.get(key, (0, 0.0))
        return failures > 0 and self.clock() >= next_at
