"""Events posted from a pass that an async handler handed to a thread (lsml_operator.handoff) reach kopf's poster.

kopf's posting queue is found through context variables that kopf sets on each object's task; these tests set
them the same way (kopf's own ``posting`` module, no stand-in) and post through the operator's ``_post_event``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import kopf
import pytest
from kopf._core.engines import posting

from lsml_operator.handoff import in_thread
from lsml_operator.main import _post_event

pytestmark = pytest.mark.unit

MLB = {
    "apiVersion": "lsml.dev/v1alpha1",
    "kind": "MLBackend",
    "metadata": {"name": "m", "namespace": "ns", "uid": "u-1"},
}


async def _post_from_a_thread(handoff: str) -> list[posting.K8sEvent]:
    """As kopf's object task does: the poster's loop, queue and settings in the context, then a thread posts."""
    queue: asyncio.Queue[posting.K8sEvent] = asyncio.Queue()
    posting.event_queue_loop_var.set(asyncio.get_running_loop())
    posting.event_queue_var.set(queue)  # type: ignore[arg-type]
    posting.settings_var.set(kopf.OperatorSettings())
    with ThreadPoolExecutor(max_workers=1) as pool:
        args = (MLB, "Normal", "Registered", "created Label Studio ML backend 1")
        if handoff == "in_thread":
            await in_thread(pool, _post_event, *args)
        else:
            await asyncio.get_running_loop().run_in_executor(pool, _post_event, *args)
    await asyncio.sleep(0)  # the thread's call_soon_threadsafe(put_nowait) runs on the next loop turn
    return [queue.get_nowait() for _ in range(queue.qsize())]


def test_a_pass_handed_off_with_in_thread_posts_its_events_on_the_mlbackend():
    events = asyncio.run(_post_from_a_thread("in_thread"))
    assert [(e.type, e.reason, e.message) for e in events] == [
        ("Normal", "Registered", "created Label Studio ML backend 1")
    ]
    assert events[0].ref["kind"] == "MLBackend" and events[0].ref["name"] == "m" and events[0].ref["uid"] == "u-1"


def test_a_bare_run_in_executor_loses_the_poster_and_the_operator_says_so(caplog):
    """Why in_thread exists: loop.run_in_executor does not carry context variables to the thread."""
    with caplog.at_level(logging.WARNING, logger="lsml_operator"):
        events = asyncio.run(_post_from_a_thread("run_in_executor"))
    assert events == []
    assert any("Event Registered not posted" in r.getMessage() for r in caplog.records), caplog.text
