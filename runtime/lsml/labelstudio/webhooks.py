"""The `<backend url>/webhook` webhook Label Studio creates beside each ML backend.

Label Studio creates it without credentials, so a backend behind HTTP Basic
auth would answer every event with 401 and never hear of an annotation; and
it leaves the webhook behind when the backend is deleted, so every later
annotation waits on a dead URL. This module fixes both through Label
Studio's webhook API.
"""

from __future__ import annotations

import base64
import logging

from lsml.labelstudio.errors import LabelStudioError
from lsml.labelstudio.transport import Transport

log = logging.getLogger(__name__)


def normalize_backend_url(url: str) -> str:
    """Label Studio itself strips trailing slashes when it derives the webhook URL; so do we."""
    return url.strip().rstrip("/")


def backend_webhook_url(backend_url: str) -> str:
    return normalize_backend_url(backend_url) + "/webhook"


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class WebhooksMixin(Transport):
    def webhooks(self, project: int) -> list[dict]:
        body = self.get_json("/api/webhooks/", params={"project": int(project)})
        items = body.get("results", []) if isinstance(body, dict) else body
        return [w for w in items if w.get("project") == int(project)]

    def backend_webhook(self, project: int, backend_url: str) -> dict | None:
        """The webhook Label Studio uses to send events to this backend, if there is one."""
        target = backend_webhook_url(backend_url)
        for webhook in self.webhooks(project):
            if normalize_backend_url(webhook.get("url", "")) == target:
                return webhook
        return None

    def ensure_backend_webhook(self, project: int, backend_url: str, authorization: str | None) -> dict | None:
        """Make the backend's webhook exist and carry `authorization` (or no Authorization header).

        Returns None when Label Studio refuses the webhook (SSRF_PROTECTION_ENABLED
        with a private backend address): registration still works, but the
        backend will receive no annotation events, which is logged loudly.
        """
        webhook = self.backend_webhook(project, backend_url)
        headers = dict((webhook or {}).get("headers") or {})
        wanted = dict(headers)
        wanted.pop("Authorization", None)
        if authorization:
            wanted["Authorization"] = authorization
        try:
            if webhook is None:
                return self.post_json(
                    "/api/webhooks/",
                    {
                        "project": int(project),
                        "url": backend_webhook_url(backend_url),
                        "send_payload": True,
                        "send_for_all_actions": True,
                        "headers": wanted,
                        "is_active": True,
                    },
                )
            if headers != wanted:
                return self.patch_json(f"/api/webhooks/{webhook['id']}/", {"headers": wanted})
            return webhook
        except LabelStudioError as exc:
            if exc.status not in (400, 403):  # 403: SSRF protection refuses a private webhook address
                raise
            log.warning(
                "Label Studio refused the webhook %s for project %s: %s. The backend will get no "
                "annotation events; set SSRF_PROTECTION_ENABLED=false on Label Studio for private addresses",
                backend_webhook_url(backend_url),
                project,
                exc.message,
            )
            return None

    def delete_backend_webhook(self, project: int, backend_url: str) -> bool:
        webhook = self.backend_webhook(project, backend_url)
        if webhook is None:
            return False
        self.delete(f"/api/webhooks/{webhook['id']}/")
        return True
