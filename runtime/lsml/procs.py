"""Process lifetime helpers shared by the supervisor, the gunicorn workers and the RQ work horses."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: deliver `sig` to this process when its parent dies (no-op elsewhere).

    Why: a child whose parent is killed (or crashes) would otherwise live on as an
    orphan under PID 1, holding its port or its job; the kernel's parent-death
    signal is the only guarantee that survives a `kill -9` of the parent.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
