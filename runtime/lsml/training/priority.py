"""Training runs at a lower CPU priority than serving.

A fit is CPU-bound and runs for seconds to hours; `/predict` and `/webhook` answer in milliseconds. On the
machine they share (a laptop, a pod with server and worker side by side, the embedded queue in the server
process) the scheduler otherwise splits the cores evenly, and a burst of webhooks while a fit runs waits
behind it: the tail of issue 21's webhook bench. A niced training still uses every idle cycle; it only
yields when a request wants the core.

Linux niceness is per thread, and threads and processes a thread starts inherit it: raising it for the
thread that runs `fit` covers the fit's own threads and subprocesses (BLAS pools, joblib, dataloaders) and
leaves the server's request threads alone, in a worker process and in the server process alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)


def _thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _set_thread_nice(value: int) -> None:
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), value)


@contextlib.contextmanager
def training_priority(nice: int) -> Iterator[int]:
    """Run the body with this thread's niceness raised to at least `nice` (0: unchanged); yields the value used.

    The old value is restored afterwards where the process may lower niceness again (root, CAP_SYS_NICE,
    RLIMIT_NICE); elsewhere the thread stays niced, which only matters to a thread that is reused for work
    other than training, and the training queues' threads are not.
    """
    before = _thread_nice()
    target = min(max(before, nice), 19)
    if nice <= 0 or target == before:
        yield before
        return
    try:
        _set_thread_nice(target)
    except OSError as exc:  # a sandbox that forbids even raising it: train at the old priority
        logger.warning("could not lower the training's CPU priority to nice %s: %s", target, exc)
        yield before
        return
    try:
        yield target
    finally:
        with contextlib.suppress(OSError):
            _set_thread_nice(before)
