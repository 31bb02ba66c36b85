"""`stop_pubsub_thread` across redis-py versions: never the unbounded join, never a swallowed error."""

from __future__ import annotations

import pytest

from lsml.training.rq_worker import stop_pubsub_thread

pytestmark = pytest.mark.unit


class NewStyleThread:
    """redis-py 8's `PubSubWorkerThread.stop(timeout=None)`: joins, unbounded unless given a timeout."""

    def __init__(self, fail_first: bool = False) -> None:
        self.timeouts: list[float | None] = []
        self.fail_first = fail_first

    def stop(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)
        if self.fail_first and len(self.timeouts) == 1:
            raise TypeError("raised inside redis-py's own stop()")


class OldStyleThread:
    """redis-py before 8: `stop()` takes no argument and only clears the running flag."""

    def __init__(self) -> None:
        self.calls = 0

    def stop(self) -> None:
        self.calls += 1


def test_a_thread_with_a_bounded_stop_is_told_to_stop_without_a_wait() -> None:
    thread = NewStyleThread()
    stop_pubsub_thread(thread)
    assert thread.timeouts == [0]


def test_an_older_redis_py_thread_is_stopped_with_its_own_signature() -> None:
    thread = OldStyleThread()
    stop_pubsub_thread(thread)
    assert thread.calls == 1


def test_an_error_inside_stop_is_raised_not_turned_into_the_unbounded_join() -> None:
    thread = NewStyleThread(fail_first=True)
    with pytest.raises(TypeError, match="inside redis-py"):
        stop_pubsub_thread(thread)
    assert thread.timeouts == [0], "stop() was called again without a timeout: a join with no bound"
