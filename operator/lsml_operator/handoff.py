"""Hand a blocking call from an async kopf handler to a thread pool, with the handler's context variables.

``loop.run_in_executor`` runs the call in a bare context, and kopf finds its event poster (the queue and its
loop) through context variables that it sets on each object's task: ``kopf.event`` from such a thread raises
``LookupError`` and posts nothing. kopf's own sync handlers copy the context before they go to its pool; an
async handler that hands work on must do the same, or every Event of the pass it starts is lost (the
``Registered``, ``Ready`` and ``CandidateHeld`` Events were, when the child-event pass and the quality poll
moved off kopf's sync handlers).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


def in_thread(executor: Executor | None, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """``fn(*args)`` on ``executor`` in a copy of the caller's context (call it from the event loop)."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(executor, functools.partial(context.run, fn, *args))
