"""LSML_FIT_TIMEOUT for the embedded runner: a training that runs too long fails, and publishes nothing later.

RQ enforces the same limit on its own (the job's `timeout`, set from
LSML_FIT_TIMEOUT by `RQQueue`): its work horse is a process, and is killed.
The embedded runner trains in a thread, which Python cannot kill, so:

* `FitThread.run` (and `run_with_deadline`) runs the training in a thread of
  its own and waits at most the timeout; then the job is failed with
  FitTimeout and the runner goes on with the next job;
* the abandoned thread may still finish `fit`, but `run_training` asks
  `publishing()` before it publishes, and an abandoned job is refused there,
  so a late fit never becomes a model version. A job that had already begun
  publishing when the deadline passed is let finish (it is then reported
  finished, not failed), so the status never contradicts the store.
* until the thread returns it keeps the project's training lock: a later job
  of the same project waits for it (within its own deadline); other projects
  train meanwhile.

Every training thread still running is listed by `running_fits()`: at
interpreter exit `lsml.training.exit_wait` waits for them (LSML_FIT_EXIT_WAIT),
then abandons them the same way and `stop`s them, so none is left running
native code (PyTorch's) while the interpreter finalizes.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import threading
from collections.abc import Callable, Iterator
from typing import Any

from lsml.errors import LsmlError, LsmlInterrupt


class FitTimeout(LsmlError):
    """The training ran past LSML_FIT_TIMEOUT."""


class FitStopped(LsmlInterrupt):
    """Raised inside a training the process gave up on as it exits (`FitThread.stop`).

    An `LsmlInterrupt` (a BaseException, like KeyboardInterrupt), so that a fit's own `except Exception:` does
    not swallow it and train on; `finally` blocks and context managers run as usual.
    """


class _Deadline:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned: BaseException | None = None
        self._publishing = False

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        with self._lock:
            if self._abandoned is not None:
                raise self._abandoned
            self._publishing = True
        yield

    def abandon(self, error: BaseException) -> bool:
        """Abandon the job unless it already began publishing (False: let it finish); `error` refuses a publish."""
        with self._lock:
            if self._publishing:
                return False
            if self._abandoned is None:
                self._abandoned = error
            return True

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._abandoned is not None


_CURRENT: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("lsml_fit_deadline", default=None)

_RUNNING_LOCK = threading.Lock()
_RUNNING: set[FitThread] = set()


def publishing() -> contextlib.AbstractContextManager[None]:
    """What `run_training` wraps its publish in: refuses (FitTimeout, FitStopped) when the job was abandoned."""
    current = _CURRENT.get()
    return current.publishing() if current is not None else contextlib.nullcontext()


def running_fits() -> list[FitThread]:
    """The training threads of this process that have not returned yet (abandoned ones included)."""
    with _RUNNING_LOCK:
        return list(_RUNNING)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> int:
    """CPython's PyThreadState_SetAsyncExc: raise `exc` in thread `ident` at its next bytecode (None: cancel)."""
    return int(
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)
    )


class FitThread:
    """One training in a daemon thread of its own: waited for with a deadline, abandoned, stopped at exit."""

    def __init__(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.label = label  # what the logs call it, e.g. "training job 3f2a... of project 1"
        self._call = (fn, args, kwargs)
        self._deadline = _Deadline()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._stoppable = False  # True while fn runs: `stop` never lands in this class's own bookkeeping
        self._outcome: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._target, name="lsml-fit", daemon=True)

    def start(self) -> FitThread:
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        self._thread.start()
        return self

    def run(self, timeout: float) -> Any:
        """Start, wait up to `timeout` s: fn's value or exception; FitTimeout (the thread is abandoned) past it."""
        self.start()
        if not self.wait(timeout) and self.abandon(
            FitTimeout("the training ran past LSML_FIT_TIMEOUT and was abandoned: nothing is published")
        ):
            raise FitTimeout(
                f"the training did not finish within {timeout:g}s (LSML_FIT_TIMEOUT); "
                "nothing it produces will be published"
            )
        self.wait(None)  # finished, or already publishing: let it end
        return self.result()

    def wait(self, timeout: float | None) -> bool:
        """True once fn has returned or raised (and with it any publish it made)."""
        return self._done.wait(timeout)

    def abandon(self, error: BaseException) -> bool:
        """Refuse its publish from now on (with `error`); False when it already began publishing."""
        return self._deadline.abandon(error)

    @property
    def abandoned(self) -> bool:
        return self._deadline.abandoned

    def result(self) -> Any:
        """fn's return value, or raise what it raised (only once `wait` said it is done)."""
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome.get("value")

    def stop(self) -> bool:
        """Raise FitStopped inside the running fn (at its next Python bytecode): for an abandoned fit at exit.

        A thread blocked in native code without returning to Python is not interrupted; `wait` tells.
        False when fn is no longer running.
        """
        with self._lock:
            ident = self._thread.ident
            if not self._stoppable or ident is None:
                return False
            return _set_async_exc(ident, FitStopped) == 1

    def _target(self) -> None:
        _CURRENT.set(self._deadline)  # a new thread starts with an empty context: this is its own
        fn, args, kwargs = self._call
        try:
            with self._lock:
                self._stoppable = True
            self._outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._outcome["error"] = exc
        finally:
            while True:
                try:
                    with self._lock:
                        self._stoppable = False
                    # a stop raised just as fn returned has nothing left to stop: cancel it if still pending
                    _set_async_exc(threading.get_ident(), None)
                    break
                except FitStopped:
                    continue
            with _RUNNING_LOCK:
                _RUNNING.discard(self)
            self._done.set()


def run_with_deadline(timeout: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in a thread; FitTimeout after `timeout` seconds (the thread is abandoned)."""
    return FitThread("training", fn, *args, **kwargs).run(timeout)
