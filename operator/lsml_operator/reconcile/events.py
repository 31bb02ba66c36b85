"""Kubernetes events as data: steps return them, the reconciler posts them after the pass.

Keeping them data means the status computation stays pure (it says which events a
transition deserves; it does not post them) and a unit test reads them off the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..status import READY

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    """One event on the MLBackend: type (Normal/Warning), a CamelCase reason, a message (never a secret)."""

    type: str
    reason: str
    message: str


EventSink = Callable[[dict[str, Any], str, str, str], None]  # (body, type, reason, message)


def flip_events(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[Event]:
    """Events on flips only (not per reconcile): Ready becoming True, and any condition that was True
    turning False (with its reason). Readable history, a bounded number of event writes."""
    before = {c["type"]: c.get("status") for c in old}
    out: list[Event] = []
    for c in new:
        if before.get(c["type"]) == c["status"]:
            continue
        if c["status"] == "True" and c["type"] == READY:
            out.append(Event(NORMAL, READY, str(c.get("message", ""))))
        elif c["status"] == "False" and before.get(c["type"]) == "True":
            out.append(Event(WARNING, f"Not{c['type']}", f"{c.get('reason')}: {c.get('message', '')}"))
    return out
