"""Optional HTTP Basic auth (`BASIC_AUTH_USER` / `BASIC_AUTH_PASS`) on every route Label Studio calls.

Probes and scrapes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) stay open.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from lsml.server.errors import error_response
from lsml.settings import Settings

PUBLIC_ENDPOINTS = frozenset({"lsml.healthz", "lsml.readyz", "lsml.metrics", "lsml.openapi"})


def _equal(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def install(app: Flask, settings: Settings) -> None:
    if not settings.basic_auth_enabled:
        return
    user = settings.basic_auth_user or ""
    password = settings.basic_auth_pass or ""

    @app.before_request
    def _check_basic_auth():
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        auth = request.authorization
        ok = auth is not None and auth.type == "basic"
        # evaluate both comparisons whatever the first gives
        ok_user = _equal(auth.username if auth else None, user)
        ok_pass = _equal(auth.password if auth else None, password)
        if ok and ok_user and ok_pass:
            return None
        return error_response(401, "unauthorized", "HTTP Basic credentials required",
                              {"WWW-Authenticate": 'Basic realm="lsml", charset="UTF-8"'})
