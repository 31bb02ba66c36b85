"""What the I/O steps of a pass found, handed to the pure ``build_status``: plain data, no API access."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..keys import ChildKey
from ..status import Check
from .events import Event


class ForeignObject(Exception):
    """A child's name is taken by an object this MLBackend does not control: it is left untouched.

    ``stale``: it is controlled by a deleted MLBackend of the same name (deleted and re-created
    before the garbage collector got to its children); it goes away by itself.
    """

    def __init__(
        self, kind: str, namespace: str, name: str, obj: dict[str, Any] | None = None, owner: str = ""
    ) -> None:
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this MLBackend")
        self.kind, self.namespace, self.name = kind, namespace, name
        refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
        self.stale = any(r.get("kind") == "MLBackend" and r.get("name") == owner and r.get("controller") for r in refs)


@dataclass
class Observed:
    """What the children step found: the live (slim) children, the foreign objects it left alone, why the
    Redis password Secret could not be had (empty when it could), the events of what it did,
    (filled by the pods step) the component checks its pods explain, and (filled by the monitoring step)
    the ServiceMonitor's condition."""

    live: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)
    foreign: list[ForeignObject] = field(default_factory=list)
    redis_auth_error: str = ""
    events: list[Event] = field(default_factory=list)
    explained: dict[str, Check] = field(default_factory=dict)
    monitoring: Check | None = None  # the ServiceMonitor's MonitoringReady; None: the spec asks for none


@dataclass
class LabelStudioResult:
    """What the Label Studio step found and did.

    check: the LabelStudioRegistered condition; None when the spec has no labelStudio (no condition).
    status: ``status.labelStudio`` to write (``{}`` removes it).
    events: what it did (Registered, Deregistered, ...) or why it could not.
    """

    check: Check | None
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
