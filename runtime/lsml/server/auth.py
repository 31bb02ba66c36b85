"""Optional HTTP Basic auth (`BASIC_AUTH_USER` / `BASIC_AUTH_PASS`) on every route Label Studio calls.

Probes (`/healthz`, `/readyz`) and `/openapi.json` stay open: a kubelet probes without credentials.
`/metrics` is behind the same auth when it is on, because its labels name the projects this backend
serves (Prometheus scrapes with `basic_auth`; SECURITY.md, "HTTP input validation"). `/readyz`
answers without credentials, but only a generic reason; the model's import error text needs them.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from lsml.server.errors import error_response
from lsml.settings import Settings

PUBLIC_ENDPOINTS = frozenset({"lsml.healthz", "lsml.readyz", "lsml.openapi"})


def _equal(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def authenticated(settings: Settings) -> bool:
    """True when this request carries the configured Basic credentials (False when auth is off)."""
    if not settings.basic_auth_enabled:
        return False
    auth = request.authorization
    ok = auth is not None and auth.type == "basic"
    # evaluate both comparisons whatever the first gives
    ok_user = _equal(auth.username if auth else None, settings.basic_auth_user or "")
    ok_pass = _equal(auth.password if auth else None, settings.basic_auth_pass or "")
    return ok and ok_user and ok_pass


def install(app: Flask, settings: Settings) -> None:
    if not settings.basic_auth_enabled:
        return

    @app.before_request
    def _check_basic_auth():
        if request.endpoint in PUBLIC_ENDPOINTS or authenticated(settings):
            return None
        return error_response(
            401,
            "unauthorized",
            "HTTP Basic credentials required",
            {"WWW-Authenticate": 'Basic realm="lsml", charset="UTF-8"'},
        )
