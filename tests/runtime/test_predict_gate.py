"""`lsml.server.predict_gate.PredictGate` on its own: predict threads are reused, and stay bounded."""

from __future__ import annotations

import threading

import pytest

from lsml.server.predict_gate import PredictGate, PredictTimeout
from tests.fixtures.polling import wait_for


def test_calls_reuse_a_waiting_predict_thread():
    """One thread per call cost more CPU than the HTTP path (bench/README.md): the second call runs where the first did."""
    gate = PredictGate(concurrency=2, wait_timeout=1.0, timeout=5.0)
    local = threading.local()

    def first():
        local.mark = "first call's thread"
        return threading.current_thread().name

    def second():
        return getattr(local, "mark", None)

    assert gate.run(first) == "lsml-predict"
    assert gate.run(second) == "first call's thread"


def test_a_stuck_thread_is_replaced_then_rejoins_and_threads_stay_bounded():
    gate = PredictGate(concurrency=2, wait_timeout=1.0, timeout=0.2)
    release = threading.Event()
    hung = []

    def hang():
        hung.append(threading.current_thread())
        release.wait(10)

    with pytest.raises(PredictTimeout):
        gate.run(hang)
    assert gate.stuck == 1
    assert gate.run(threading.current_thread) is not hung[0]  # another thread while that one hangs
    release.set()  # the stuck call returns: it is no longer counted, and its thread waits for work or ends
    wait_for(lambda: gate.stuck, 10, 0.01, what="the stuck call counted as returned", until=lambda n: n == 0)
    used = {gate.run(threading.current_thread) for _ in range(20)}
    assert len(used | set(hung)) <= 2 * gate.concurrency  # 22 calls, never more threads than that


def test_errors_and_context_reach_the_caller():
    import contextvars

    gate = PredictGate(concurrency=1, wait_timeout=1.0, timeout=5.0)
    var = contextvars.ContextVar("var", default="unset")
    var.set("the request's value")
    assert gate.run(var.get) == "the request's value"

    def boom():
        raise ValueError("model failed")

    with pytest.raises(ValueError, match="model failed"):
        gate.run(boom)
    assert gate.run(lambda x: x + 1, 41) == 42  # the thread that raised serves the next call
