"""The operator process' malloc: two arenas instead of glibc's default of up to eight per core.

glibc gives a thread that allocates while another holds the main arena an arena of its own, up to
``8 x cores``. The operator's threads (kopf's handler pool, ``LSML_OPERATOR_MAX_WORKERS``, plus the metrics
server and the event loop) all parse API answers and build children, so each one grows an arena; memory
freed in one arena is not reused by the others, and the process' RSS ends up several times the size of the
Python objects it keeps (bench/README.md, Operator: the RSS at 1,000 MLBackends). Two arenas keep the
contention low (the GIL serialises most allocations anyway) and the RSS close to what is live.

Set at start-up with ``mallopt(M_ARENA_MAX)`` before the threads exist; ``MALLOC_ARENA_MAX`` in the
environment wins (glibc reads it itself), and a libc without ``mallopt`` (musl) is left alone.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; whether the cap was set here (False: set by the environment, or not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process' own symbols: libc's, without a library search
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
