"""The last step of a pass, and the only status write: merge-patch the status when it changed.

"Changed" ignores timestamps and, between full passes, condition messages (progress text such
as "1/3 updated" -> "2/3 updated" is not worth a write; status and reason changes are; the
Label Studio condition's message always is, it says why). An unchanged status is not written:
no request, no watch event, no hot loop.

The status last written for each MLBackend is kept: reconciles of one object are serialized,
so it is fresher than the body a queued trigger carries (which avoids double events and
needless writes).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from ..keys import Key, key_of
from ..status import LABEL_STUDIO_REGISTERED, strip_volatile


class StatusPatcher(Protocol):
    def patch_mlbackend_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]: ...


def _comparable(status: dict[str, Any], keys: set[str], full: bool) -> dict[str, Any]:
    out = strip_volatile({k: v for k, v in status.items() if k in keys and v is not None})
    if not full:
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "message" or c["type"] == LABEL_STUDIO_REGISTERED}
            for c in out.get("conditions") or []
        ]
    return out


def needs_write(old: dict[str, Any], new: dict[str, Any], *, full: bool) -> bool:
    """Whether ``new`` differs from ``old`` in anything worth a write (see the module docstring)."""
    keys = set(new)
    return _comparable(new, keys, full) != _comparable(old, keys, full)


class StatusWriter:
    """Owns every status write, so "was it written" and "what is on the server" have one answer."""

    def __init__(self, kube: StatusPatcher) -> None:
        self.kube = kube
        self._guard = threading.Lock()
        self._last: dict[Key, tuple[str, dict[str, Any]]] = {}  # key -> (uid, status on the server)

    def previous(self, mlb: dict[str, Any]) -> dict[str, Any]:
        """The status on the server: the one we last wrote for this object (same uid), else the body's."""
        with self._guard:
            cached = self._last.get(key_of(mlb))
        if cached and cached[0] == str(mlb["metadata"].get("uid") or ""):
            return dict(cached[1])
        return dict(mlb.get("status") or {})

    def last(self, key: Key) -> dict[str, Any] | None:
        with self._guard:
            cached = self._last.get(key)
        return cached[1] if cached else None

    def write_if_changed(self, mlb: dict[str, Any], old: dict[str, Any], new: dict[str, Any], *, full: bool) -> bool:
        """Patch ``new`` when it differs from ``old`` (``needs_write``); return whether it wrote."""
        key = key_of(mlb)
        # a merge patch leaves the keys it does not name (the quality poller's) as they are on the server
        written = {k: v for k, v in {**old, **new}.items() if v is not None}
        wrote = needs_write(old, new, full=full)
        if wrote:
            self.kube.patch_mlbackend_status(key[0], key[1], new)
        elif old:
            written = old  # nothing written: the server still has the old status
        with self._guard:
            self._last[key] = (str(mlb["metadata"].get("uid") or ""), written)
        return wrote

    def write_fields(self, mlb: dict[str, Any], old: dict[str, Any], fields: dict[str, Any]) -> bool:
        """Patch only ``fields`` (a part of status another step owns, e.g. ``served``/``score``), when one of them
        differs from ``old`` (None and absent are the same); return whether it wrote."""
        key = key_of(mlb)
        if all(old.get(k) == v for k, v in fields.items()):
            return False
        self.kube.patch_mlbackend_status(key[0], key[1], fields)
        merged = {k: v for k, v in {**old, **fields}.items() if v is not None}
        with self._guard:
            self._last[key] = (str(mlb["metadata"].get("uid") or ""), merged)
        return True

    def forget(self, key: Key) -> None:
        with self._guard:
            self._last.pop(key, None)
