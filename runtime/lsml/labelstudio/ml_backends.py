"""Connecting ML backends to Label Studio projects, idempotently.

`ensure_ml_backend` is what both `label-studio-ml register` and the operator
call on every reconcile, so it must converge: one backend per (project, URL),
created when missing, adopted when someone (a person in the UI, a previous
run) already made it, patched only when something differs.

Label Studio's `PATCH /api/ml/<id>` re-validates the backend by calling its
health and setup with the *submitted* fields only, so every PATCH sends the
complete desired state (url, project, auth) rather than the changed fields.
Label Studio never returns the basic-auth password; the webhook's
Authorization header (which we set ourselves) is the only witness of which
password Label Studio holds, so a password change is detected through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lsml.labelstudio.errors import LabelStudioError, LabelStudioUnreachable
from lsml.labelstudio.transport import Transport
from lsml.labelstudio.webhooks import WebhooksMixin, basic_auth_header, normalize_backend_url

log = logging.getLogger(__name__)

DEFAULT_TITLE = "lsml"
_COMPARED_FIELDS = (
    "title",
    "description",
    "is_interactive",
    "auth_method",
    "basic_auth_user",
    "extra_params",
    "timeout",
)


class MLBackendsMixin(WebhooksMixin, Transport):
    def ml_backends(self, project: int) -> list[dict]:
        """The project's backends. Label Studio health-checks each one while answering."""
        body = self.get_json("/api/ml/", params={"project": int(project)}, timeout=max(self.timeout, 30))
        return body.get("results", []) if isinstance(body, dict) else body

    def ml_backend(self, ml_backend_id: int) -> dict:
        """One backend, with its freshly checked `state` and `model_version`."""
        return self.get_json(f"/api/ml/{int(ml_backend_id)}", timeout=max(self.timeout, 30))

    def ensure_ml_backend(
        self,
        project: int,
        url: str,
        *,
        title: str | None = None,
        description: str | None = None,
        is_interactive: bool = False,
        basic_auth: tuple[str, str] | None = None,
        extra_params: dict | None = None,
        timeout: float | None = None,
    ) -> tuple[dict, bool]:
        """Make `project` use the backend at `url`; return (backend, created).

        Raises LabelStudioError with Label Studio's own reason when it refuses
        (backend unreachable, setup failed, ML_BLOCK_LOCAL_IP, ...).
        """
        url = normalize_backend_url(url)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"ML backend URL must start with http:// or https://, got {url!r}")
        desired = _desired_fields(project, url, title, description, is_interactive, basic_auth, extra_params, timeout)
        authorization = basic_auth_header(*basic_auth) if basic_auth else None

        same_url = self._backends_with_url(project, url)  # one listing: Label Studio health-checks each backend
        existing = same_url[0] if same_url else None
        self._remove_duplicates(project, url, same_url[1:])
        if existing is None:
            backend = self._create_backend(project, url, desired)
            created = True
        else:
            created = False
            backend = existing
            webhook = self.backend_webhook(project, url)
            held_authorization = ((webhook or {}).get("headers") or {}).get("Authorization")
            password_stale = basic_auth is not None and (
                not existing.get("basic_auth_pass_is_set") or held_authorization != authorization
            )
            if password_stale or _differs(existing, desired):
                with _explain_refusals():
                    backend = self.update_ml_backend(existing["id"], desired)
        self.ensure_backend_webhook(project, url, authorization)
        return backend, created

    def _create_backend(self, project: int, url: str, desired: dict[str, Any]) -> dict:
        """POST /api/ml, surviving answers that do not say whether Label Studio saved the backend.

        With SSRF_PROTECTION_ENABLED (the default) and ML_BLOCK_LOCAL_IP=false,
        Label Studio 1.23.2 saves the backend, then fails creating its webhook
        to a private address and answers 403 anyway. A POST whose answer is lost
        (a read timeout while Label Studio validates a slow backend, a dropped
        connection, a 5xx from a proxy) may have saved it too. Retrying blindly
        would make a duplicate each time, so such a failure is followed by a look
        for the backend it may have saved.
        """
        try:
            with _explain_refusals():
                return self.post_json("/api/ml/", desired, timeout=max(self.timeout, 30))
        except LabelStudioError as exc:
            outcome_unknown = exc.status == 403 or isinstance(exc, LabelStudioUnreachable) or (exc.status or 0) >= 500
            if not outcome_unknown:
                raise
            saved = self._find_backend(project, url)
            if saved is None:
                raise
            log.warning(
                "Label Studio saved ML backend %s for project %s but answered: %s", saved["id"], project, exc.message
            )
            return saved

    def update_ml_backend(self, ml_backend_id: int, fields: dict[str, Any]) -> dict:
        """PATCH a backend. `fields` must hold url and project (see the module docstring)."""
        return self.patch_json(f"/api/ml/{int(ml_backend_id)}", fields, timeout=max(self.timeout, 30))

    def delete_ml_backend(self, ml_backend_id: int) -> None:
        """Delete the backend and, unless another backend of the project shares its URL, its webhook."""
        backend = self.get_json(f"/api/ml/{int(ml_backend_id)}", timeout=max(self.timeout, 30))
        self.delete(f"/api/ml/{int(ml_backend_id)}")
        project, url = backend.get("project"), backend.get("url", "")
        if project is None or not url:
            return
        if self._find_backend(project, url) is None:
            self.delete_backend_webhook(project, url)

    def train(self, ml_backend_id: int) -> None:
        """Press Start Training: Label Studio sends START_TRAINING to the backend's /webhook."""
        self.post_json(f"/api/ml/{int(ml_backend_id)}/train", {}, timeout=max(self.timeout, 120))

    def _remove_duplicates(self, project: int, url: str, newer: list[dict]) -> None:
        """Delete the project's newer backends with this URL: one URL is one backend, the oldest.

        Two registrations racing (a retried POST whose first answer was lost, two
        operators before peering settles, a person adding it again in the UI)
        leave Label Studio with two backends that both get every prediction call.
        """
        for backend in newer:
            log.warning(
                "project %s had a second ML backend %s for %s: deleting the duplicate", project, backend["id"], url
            )
            self.delete(f"/api/ml/{int(backend['id'])}")

    def _backends_with_url(self, project: int, url: str) -> list[dict]:
        """The project's backends for `url`, oldest first."""
        matches = [b for b in self.ml_backends(project) if normalize_backend_url(b.get("url", "")) == url]
        return sorted(matches, key=lambda b: b["id"])

    def _find_backend(self, project: int, url: str) -> dict | None:
        matches = self._backends_with_url(project, url)
        if len(matches) > 1:
            log.warning("project %s has %d ML backends for %s; using the oldest", project, len(matches), url)
        return matches[0] if matches else None


BLOCKED_ADDRESS_HINT = (
    "Label Studio refuses private and loopback backend addresses by default: run Label Studio with "
    "ML_BLOCK_LOCAL_IP=false (and SSRF_PROTECTION_ENABLED=false, or it creates no webhook and the backend "
    "gets no annotation events)"
)


@contextmanager
def _explain_refusals() -> Iterator[None]:
    """Label Studio's SSRF refusal names a subnet, not the setting that lifts it: add that."""
    try:
        yield
    except LabelStudioError as exc:
        text = exc.message.lower()
        if "reserved network address" in text or "not allowed" in text:
            raise LabelStudioError(
                exc.status, f"{exc.message}. {BLOCKED_ADDRESS_HINT}", method=exc.method, path=exc.path
            ) from None
        raise


def _desired_fields(
    project: int,
    url: str,
    title: str | None,
    description: str | None,
    is_interactive: bool,
    basic_auth: tuple[str, str] | None,
    extra_params: dict | None,
    timeout: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "url": url,
        "project": int(project),
        "title": title or DEFAULT_TITLE,
        "description": description or "",
        "is_interactive": bool(is_interactive),
        "auth_method": "BASIC_AUTH" if basic_auth else "NONE",
    }
    if basic_auth:
        user, password = basic_auth
        if not user or not password:
            raise ValueError("basic auth needs both a user and a password")
        fields["basic_auth_user"] = user
        fields["basic_auth_pass"] = password
    if extra_params is not None:
        fields["extra_params"] = extra_params
    if timeout is not None:
        fields["timeout"] = float(timeout)
    return fields


def _differs(existing: dict, desired: dict) -> bool:
    for name in _COMPARED_FIELDS:
        if name not in desired:
            continue
        have, want = existing.get(name), desired[name]
        if name == "timeout" and have is not None:
            if float(have) != float(want):
                return True
        elif name == "description" and not have and not want:
            continue
        elif have != want:
            return True
    return False
