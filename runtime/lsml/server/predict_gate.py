"""Predictions run with a bounded number at once *and* a deadline each, so a hung model cannot take the server.

Without it a `predict` that never returns holds its slot forever: four such
calls (LSML_PREDICT_CONCURRENCY=4) and every later /predict waits 30 s for a
slot, then gets 503, until the process is restarted (SECURITY.md).

Python cannot kill a thread, so the choice is about accounting:

* each call runs in a thread of its own; the request waits for it at most
  LSML_PREDICT_TIMEOUT seconds, then answers 504 and **gives its slot back**:
  the server keeps serving;
* the thread that did not return is counted as *stuck* until it does return
  (`lsml_predict_stuck_threads`), so its memory and CPU are visible;
* stuck threads are bounded: once a process holds LSML_PREDICT_CONCURRENCY
  of them, /predict answers 503 `predict_stuck` without starting another one
  and /healthz answers 503, so a liveness probe (the operator's Deployment has
  one) restarts the process. A process never has more than 2 x
  LSML_PREDICT_CONCURRENCY predict threads.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from lsml.errors import LsmlError


class PredictBusy(LsmlError):
    """Every slot stayed taken for the whole wait."""


class PredictTimeout(LsmlError):
    """The model's predict ran past the deadline (its thread is now counted as stuck)."""


class PredictStuck(LsmlError):
    """Too many predict threads never returned: this process needs a restart."""


class _Call:
    """One predict call's outcome, shared by the request thread and the predict thread.

    `done` is a plain lock the request thread waits on (held until the call ends): one
    futex wake for the whole hand-back, where an Event adds a Condition and its waiter list.
    """

    __slots__ = ("fn", "args", "kwargs", "context", "done", "abandoned", "value", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, context: contextvars.Context) -> None:
        self.fn, self.args, self.kwargs, self.context = fn, args, kwargs, context
        self.done = threading.Lock()
        self.done.acquire()
        self.abandoned = False
        self.value: Any = None
        self.error: BaseException | None = None


class _PredictThread:
    """A predict thread that outlives its call: it waits for the next one instead of exiting.

    Why: starting a thread per call cost 0.07 ms of CPU with a no-op model and 0.36 ms with
    scikit-learn's (a fresh thread's stack, allocator arena and library thread-locals; bench/README.md,
    "Serving overhead"), more than the whole HTTP path; handing a call to a waiting thread is two
    lock releases.
    """

    def __init__(self, gate: PredictGate) -> None:
        self._gate = gate
        self._go = threading.Lock()
        self._go.acquire()
        self._call: _Call | None = None
        threading.Thread(target=self._loop, name="lsml-predict", daemon=True).start()

    def give(self, call: _Call) -> None:
        self._call = call
        self._go.release()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            call, self._call = self._call, None
            assert call is not None
            self._gate._execute(call)
            if not self._gate._idle_again(self):
                return


class PredictGate:
    def __init__(self, concurrency: int, wait_timeout: float, timeout: float) -> None:
        self.concurrency = concurrency
        self.wait_timeout = wait_timeout
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._stuck = 0
        self._idle: list[_PredictThread] = []  # threads waiting for a call (at most `concurrency`)

    @property
    def stuck(self) -> int:
        """Predict threads past their deadline that have not returned yet."""
        with self._lock:
            return self._stuck

    @property
    def slots(self) -> threading.BoundedSemaphore:
        """The predict slots themselves, for work in this process that must share them with /predict
        (a background pre-labelling job): live requests and the job never run more than
        LSML_PREDICT_CONCURRENCY predictions together."""
        return self._slots

    @property
    def healthy(self) -> bool:
        return self.stuck < self.concurrency

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in a predict thread; PredictBusy, PredictTimeout or PredictStuck when it cannot."""
        if not self.healthy:
            raise PredictStuck(
                f"{self.stuck} predictions never returned (LSML_PREDICT_TIMEOUT={self.timeout:g}s); "
                "this process must be restarted"
            )
        if not self._slots.acquire(timeout=self.wait_timeout):
            raise PredictBusy(f"{self.concurrency} predictions already running (LSML_PREDICT_CONCURRENCY); try again")
        call = _Call(fn, args, kwargs, contextvars.copy_context())
        try:
            with self._lock:
                thread = self._idle.pop() if self._idle else None
            (thread or _PredictThread(self)).give(call)
        except BaseException:
            self._slots.release()
            raise
        finished = call.done.acquire(timeout=self.timeout)
        if not finished:
            with self._lock:
                if call.done.acquire(blocking=False):
                    finished = True  # it returned between the timeout and the lock
                else:
                    call.abandoned = True
                    self._stuck += 1
        self._slots.release()  # given back either way: a stuck thread is counted in `stuck`, not in a slot
        if not finished:
            raise PredictTimeout(f"the model's predict did not return within {self.timeout:g}s (LSML_PREDICT_TIMEOUT)")
        if call.error is not None:
            raise call.error
        return call.value

    def _execute(self, call: _Call) -> None:
        """In the predict thread: run the call, then tell whoever waits (or stop counting it stuck)."""
        try:
            call.value = call.context.run(call.fn, *call.args, **call.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the request thread
            call.error = exc
        finally:
            call.fn = call.args = call.kwargs = call.context = None  # type: ignore[assignment]  # nothing kept alive
            with self._lock:
                call.done.release()
                if call.abandoned:
                    self._stuck -= 1

    def _idle_again(self, thread: _PredictThread) -> bool:
        """A thread whose call ended waits for the next one, unless `concurrency` threads already do."""
        with self._lock:
            if len(self._idle) >= self.concurrency:
                return False
            self._idle.append(thread)
            return True
