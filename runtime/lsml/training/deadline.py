"""LSML_FIT_TIMEOUT for the embedded runner: a training that runs too long fails, and publishes nothing later.

RQ enforces the same limit on its own (the job's `timeout`, set from
LSML_FIT_TIMEOUT by `RQQueue`): its work horse is a process, and is killed.
The embedded runner trains in a thread, which Python cannot kill, so:

* `run_with_deadline` runs the training in a thread of its own and waits at
  most the timeout; then the job is failed with FitTimeout and the runner
  goes on with the next job;
* the abandoned thread may still finish `fit`, but `run_training` asks
  `publishing()` before it publishes, and an abandoned job is refused there,
  so a late fit never becomes a model version. A job that had already begun
  publishing when the deadline passed is let finish (it is then reported
  finished, not failed), so the status never contradicts the store.
* until the thread returns it keeps the project's training lock: a later job
  of the same project waits for it (within its own deadline); other projects
  train meanwhile.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

from lsml.errors import LsmlError


class FitTimeout(LsmlError):
    """The training ran past LSML_FIT_TIMEOUT."""


class _Deadline:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._publishing = False

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        with self._lock:
            if self._abandoned:
                raise FitTimeout("the training ran past LSML_FIT_TIMEOUT and was abandoned: nothing is published")
            self._publishing = True
        yield

    def abandon(self) -> bool:
        """Abandon the job unless it already began publishing (False: let it finish)."""
        with self._lock:
            if self._publishing:
                return False
            self._abandoned = True
            return True


_CURRENT: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("lsml_fit_deadline", default=None)


def publishing() -> contextlib.AbstractContextManager[None]:
    """What `run_training` wraps its publish in: refuses (FitTimeout) when the job was abandoned."""
    current = _CURRENT.get()
    return current.publishing() if current is not None else contextlib.nullcontext()


def run_with_deadline(timeout: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in a thread; FitTimeout after `timeout` seconds (the thread is abandoned)."""
    deadline = _Deadline()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        _CURRENT.set(deadline)  # a new thread starts with an empty context: this is its own
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="lsml-fit", daemon=True).start()
    if not done.wait(timeout) and deadline.abandon():
        raise FitTimeout(
            f"the training did not finish within {timeout:g}s (LSML_FIT_TIMEOUT); nothing it produces will be published"
        )
    done.wait()  # finished, or already publishing: let it end
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
