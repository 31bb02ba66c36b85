"""Label Studio registration of an MLBackend: one ML backend per listed project, never two.

Every client comes from ``lsml.labelstudio.connect`` (which builds the one Label
Studio client). Duplicates are avoided by *adopting*: ``ensure_ml_backend`` finds an
existing backend with the same URL in the project before creating one, so an operator
killed between Label Studio's create and the status write finds and records the same id
on its next pass. Ids are recorded in status so projects dropped from the spec, and the
whole set at deletion, can be removed.

Tokens and basic-auth passwords are passed to the client and nowhere else: they are not
in the returned records, the messages, or ``repr`` of anything here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

ClientFactory = Callable[[str, str, float], Any]


def default_client_factory(url: str, token: str, timeout: float) -> Any:
    # imported lazily: builders and tests need no runtime deps. connect(): the token is bound to `url`'s origin
    from lsml.labelstudio import Credential, connect

    return connect(url, Credential(url, token), timeout=timeout)


@dataclass(frozen=True)
class Target:
    """What the registration should look like. ``token``/``basic_auth`` are secret: excluded from repr."""

    label_studio_url: str
    backend_url: str
    projects: tuple[int, ...]
    title: str
    description: str
    interactive: bool
    timeout: float
    token: str = field(repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    secret_versions: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """Hash of the non-secret inputs plus the Secrets' resourceVersions (a rotated token re-registers).

        Never a hash of the token itself: status must not carry anything derived from it.
        """
        payload = {
            "ls": self.label_studio_url,
            "url": self.backend_url,
            "projects": sorted(self.projects),
            "title": self.title,
            "description": self.description,
            "interactive": self.interactive,
            "timeout": self.timeout,
            "basic": self.basic_auth is not None,
            "secrets": list(self.secret_versions),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Outcome:
    """Result of one sync: the records to keep in status and the first error (None when all projects are done)."""

    backends: list[dict[str, Any]]
    error: str | None = None
    unreachable: bool = False
    created: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def _error_text(exc: Exception) -> tuple[str, bool]:
    """A message safe for status/events (LabelStudioError never carries the token) and whether LS was unreachable."""
    from lsml.labelstudio import LabelStudioError, LabelStudioUnreachable

    unreachable = isinstance(exc, (LabelStudioUnreachable, ConnectionError, TimeoutError))
    if isinstance(exc, LabelStudioError):
        return str(exc), unreachable or getattr(exc, "status", None) is None
    # Any other exception's text is not ours to vouch for (http.client quotes an invalid header, token and
    # all), and status, events and the log all show this text: the type alone.
    return f"{type(exc).__name__} (its text is withheld: it may quote a credential)", True


def _record(project: int, backend: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "project": int(project),
        "id": int(backend["id"]),
        "url": url,
        "modelVersion": str(backend.get("model_version") or ""),
    }


def _is_not_found(exc: Exception) -> bool:
    """Label Studio answered 404: the backend (or project) is gone already, which is what deleting wants."""
    from lsml.labelstudio import LabelStudioError

    return isinstance(exc, LabelStudioError) and exc.status == HTTPStatus.NOT_FOUND


@contextmanager
def _connected(target: Target, factory: ClientFactory) -> Iterator[Any]:
    """A client for the target's Label Studio, closed afterwards whatever happens
    (a client from a test factory may have no ``close``)."""
    client = factory(target.label_studio_url, target.token, target.timeout)
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


def sync(target: Target, recorded: list[dict[str, Any]], factory: ClientFactory = default_client_factory) -> Outcome:
    """Make Label Studio match ``target``: ensure one backend per project, delete stale ones we recorded.

    Projects are handled one by one; on the first failure the records gathered so far plus
    the old records of the projects not reached are returned, so the status never forgets
    an id it may have to delete later.
    """
    kept: list[dict[str, Any]] = []
    out = Outcome(backends=kept)
    with _connected(target, factory) as client:
        for project in target.projects:
            try:
                backend, created = client.ensure_ml_backend(
                    project,
                    target.backend_url,
                    title=target.title,
                    description=target.description,
                    is_interactive=target.interactive,
                    basic_auth=target.basic_auth,
                    extra_params=None,
                    timeout=target.timeout,
                )
            except Exception as exc:  # noqa: BLE001 - any failure becomes a condition, and a retry
                out.error, out.unreachable = _error_text(exc)
                out.error = f"project {project}: {out.error}"
                done = {r["project"] for r in kept}
                kept.extend(r for r in recorded if r.get("project") not in done)
                return out
            rec = _record(project, backend, target.backend_url)
            if created:
                out.created.append(rec["id"])
            kept.append(rec)
            # the same project recorded with another id (the URL changed): that one is stale
            for old in recorded:
                if old.get("project") == project and old.get("id") != rec["id"]:
                    _delete(client, old, out)
        wanted = set(target.projects)
        for old in recorded:
            if old.get("project") not in wanted:
                for backend_id in _ours_in_project(client, old, target.backend_url, out):
                    _delete(client, {"id": backend_id}, out)
                    if out.error:
                        break
                if out.error:
                    kept.append(old)
                    return out
        return out


def _ours_in_project(client: Any, record: dict[str, Any], url: str, out: Outcome) -> list[int]:
    """The recorded backend of an unwired project plus any other there with our URL: a create whose
    answer never came back (the operator killed mid-call, or Label Studio committing it after the
    client gave up) is in Label Studio but in no status. A listing failure other than 404 (project
    gone) sets ``out.error`` and returns nothing: the record stays in the status for the retry."""
    ids = {int(record["id"])}
    try:
        ids.update(int(b["id"]) for b in client.ml_backends(int(record["project"])) if _same_url(b, url))
    except Exception as exc:  # noqa: BLE001
        if not _is_not_found(exc):
            out.error, out.unreachable = _error_text(exc)
            return []
    return sorted(ids)


def _same_url(backend: dict[str, Any], url: str) -> bool:
    return str(backend.get("url", "")).rstrip("/") == url.rstrip("/")


def _delete(client: Any, record: dict[str, Any], out: Outcome) -> None:
    try:
        client.delete_ml_backend(int(record["id"]))
        out.removed.append(int(record["id"]))
    except Exception as exc:  # noqa: BLE001
        if _is_not_found(exc):
            out.removed.append(int(record["id"]))
            return
        out.error, out.unreachable = _error_text(exc)


def deregister(
    target: Target, recorded: list[dict[str, Any]], factory: ClientFactory = default_client_factory
) -> Outcome:
    """Delete every registration of this backend: the recorded ids, and any backend in the listed
    projects with our URL (one created just before a crash, never recorded). Raises nothing; check ``error``."""
    out = Outcome(backends=[])
    with _connected(target, factory) as client:
        ids = {int(r["id"]) for r in recorded}
        for project in target.projects:
            try:
                ids.update(int(b["id"]) for b in client.ml_backends(project) if _same_url(b, target.backend_url))
            except Exception as exc:  # noqa: BLE001
                if not _is_not_found(exc):
                    out.error, out.unreachable = _error_text(exc)
                    return out
        for backend_id in sorted(ids):
            _delete(client, {"id": backend_id}, out)
            if out.error:
                return out
        return out
