"""How the operator names what it caches: an MLBackend by ``(namespace, name)``, a child by ``(kind, namespace, name)``.

Built here only, so every cache agrees on the key (a cache filled under one spelling and
emptied under another leaks, or drops someone else's entries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name) of an MLBackend
ChildKey = tuple[str, str, str]  # (kind, namespace, name) of a child object


def key_of(body: Mapping[str, Any]) -> Key:
    """The key of an MLBackend body (as kopf or the API server hands it)."""
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def child_key(obj: Mapping[str, Any]) -> ChildKey:
    """The key of a child object."""
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def controller_owner(obj: Mapping[str, Any]) -> Key | None:
    """The key of the MLBackend that controls ``obj`` (its controller owner reference), else None."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "MLBackend" and ref.get("controller"):
            return (str(meta.get("namespace") or ""), str(ref.get("name") or ""))
    return None
