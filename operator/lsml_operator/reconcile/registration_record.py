"""Where the operator registered an MLBackend, kept where a status patch cannot reach it.

Why: once ``spec.labelStudio`` is removed (or the MLBackend is deleted after that), the spec no
longer says which Label Studio holds the registrations or which Secret's token may delete them.
Status used to say it (``status.labelStudio.url``/``apiTokenSecretRef``), but status is the
weakest-guarded part of the object: whoever may patch ``mlbackends/status`` (a controller, a
dashboard, a CI bot) could point both at their own server and a Secret of their choosing, and the
operator would send that Secret's token there (issue 22 item 11). So the operator records what it
registered with, before it calls Label Studio, in an annotation it owns on the MLBackend,
``lsml.dev/label-studio``: Label Studio's URL, the token Secret's name and key, and the backend
URL it registered. Metadata is writable only by whoever may update the MLBackend itself, who may
already name any URL and Secret in its spec. Deregistration without a spec reads only this record;
status is never trusted for where a token goes.

The record last written for each MLBackend (same uid) is also kept in memory, as the status
writer keeps its status: reconciles of one object are serialized, so it is fresher than the body a
queued trigger carries.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..keys import Key, key_of

ANNOTATION = "lsml.dev/label-studio"


class Annotator(Protocol):
    def annotate_mlbackend(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RegistrationRecord:
    """What a registration used: Label Studio's URL, the token Secret (name, key), the backend URL. No secret."""

    url: str
    secret_name: str
    secret_key: str
    backend_url: str

    def to_annotation(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_annotation(cls, text: str | None) -> RegistrationRecord | None:
        """The record in ``text``; None when absent or not one the operator wrote (never half of one)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            fields = {k: data[k] for k in ("url", "secret_name", "secret_key", "backend_url")}
        except (ValueError, TypeError, KeyError):
            return None
        if not all(isinstance(v, str) and v for v in fields.values()):
            return None
        return cls(**fields)


class RegistrationRecords:
    """Reads and writes the ``lsml.dev/label-studio`` record of MLBackends."""

    def __init__(self, kube: Annotator) -> None:
        self.kube = kube
        self._guard = threading.Lock()
        self._last: dict[Key, tuple[str, RegistrationRecord]] = {}  # key -> (uid, record on the server)

    def recorded(self, mlb: dict[str, Any]) -> RegistrationRecord | None:
        """The record on the server: the one we last wrote for this object (same uid), else the body's."""
        with self._guard:
            cached = self._last.get(key_of(mlb))
        if cached and cached[0] == str(mlb["metadata"].get("uid") or ""):
            return cached[1]
        annotations = (mlb.get("metadata") or {}).get("annotations") or {}
        return RegistrationRecord.from_annotation(annotations.get(ANNOTATION))

    def record(self, mlb: dict[str, Any], record: RegistrationRecord) -> None:
        """Write ``record`` unless it is already there (raises the API error: no record, no registration)."""
        if self.recorded(mlb) == record:
            return
        key = key_of(mlb)
        self.kube.annotate_mlbackend(key[0], key[1], {ANNOTATION: record.to_annotation()})
        with self._guard:
            self._last[key] = (str(mlb["metadata"].get("uid") or ""), record)

    def forget(self, key: Key) -> None:
        with self._guard:
            self._last.pop(key, None)
