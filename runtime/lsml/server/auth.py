"""Who may call what: optional HTTP Basic auth on the Label Studio-facing routes, and the admin routes' own gate.

Basic auth (`BASIC_AUTH_USER` / `BASIC_AUTH_PASS`) covers every route Label Studio calls.
Probes (`/healthz`, `/readyz`) and `/openapi.json` stay open: a kubelet probes without credentials.
`/metrics` is behind the same auth when it is on, because its labels name the projects this backend
serves (Prometheus scrapes with `basic_auth`; SECURITY.md, "HTTP input validation"). `/readyz`
answers without credentials, but only a generic reason; the model's import error text needs them.

The admin routes (`ADMIN_ENDPOINTS`: `/prelabel`, `/versions/activate`, `/versions/unpin`) are never
called by Label Studio, so "auth off" must not open them to whoever reaches the port (they write
predictions with the backend's key into a project, pin or unpin versions). They take
`Authorization: Bearer <LSML_ADMIN_TOKEN>` or, when Basic auth is on, its credentials; with neither
configured they answer 403 `admin_disabled` naming the settings (SECURITY.md, issue 22 item 4).
"""

from __future__ import annotations

import hmac

from flask import Flask, request
from werkzeug.datastructures import Authorization

from lsml.server.errors import error_response
from lsml.settings import Settings

PUBLIC_ENDPOINTS = frozenset({"lsml.healthz", "lsml.readyz", "lsml.openapi"})
#: Routes for the backend's operator, not for Label Studio: gated by `admin_authorized` whatever Basic auth says.
ADMIN_ENDPOINTS = frozenset({"lsml.prelabel", "lsml.versions_activate", "lsml.versions_unpin"})


def _equal(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def authenticated(settings: Settings) -> bool:
    """True when this request carries the configured Basic credentials (False when auth is off)."""
    return settings.basic_auth_enabled and basic_credentials_match(settings, request.authorization)


def basic_credentials_match(settings: Settings, auth: Authorization | None) -> bool:
    """True when `auth` is Basic with the configured user and password; no request needed
    (`lsml.server.fast_predict`). Both comparisons run whatever the first gives: no timing tells which failed."""
    ok = auth is not None and auth.type == "basic"
    ok_user = _equal(auth.username if auth else None, settings.basic_auth_user or "")
    ok_pass = _equal(auth.password if auth else None, settings.basic_auth_pass or "")
    return ok and ok_user and ok_pass


def admin_authorized(settings: Settings) -> bool:
    """True when this request carries `Bearer <LSML_ADMIN_TOKEN>` or the configured Basic credentials."""
    auth = request.authorization
    if settings.admin_token and auth is not None and auth.type == "bearer":
        return _equal(auth.token, settings.admin_token)
    return authenticated(settings)


def _check_admin(settings: Settings):
    """None when an admin route may run; else the 403 (not configured) or 401 (no or wrong credentials)."""
    if not settings.admin_enabled:
        return error_response(
            403,
            "admin_disabled",
            "this admin route is disabled: set LSML_ADMIN_TOKEN (then send Authorization: Bearer <token>) "
            "or Basic auth (BASIC_AUTH_USER/BASIC_AUTH_PASS) on the server",
        )
    if admin_authorized(settings):
        return None
    accepted = ["Bearer (LSML_ADMIN_TOKEN)"] if settings.admin_token else []
    accepted += ["Basic (BASIC_AUTH_USER/BASIC_AUTH_PASS)"] if settings.basic_auth_enabled else []
    challenges = ['Bearer realm="lsml-admin"'] if settings.admin_token else []
    challenges += ['Basic realm="lsml", charset="UTF-8"'] if settings.basic_auth_enabled else []
    return error_response(
        401,
        "unauthorized",
        f"admin route: credentials required, {' or '.join(accepted)}",
        {"WWW-Authenticate": ", ".join(challenges)},
    )


def install(app: Flask, settings: Settings) -> None:
    @app.before_request
    def _check_admin_routes():
        if request.endpoint in ADMIN_ENDPOINTS:
            return _check_admin(settings)
        return None

    if not settings.basic_auth_enabled:
        return

    @app.before_request
    def _check_basic_auth():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint in ADMIN_ENDPOINTS or authenticated(settings):
            return None
        return error_response(
            401,
            "unauthorized",
            "HTTP Basic credentials required",
            {"WWW-Authenticate": 'Basic realm="lsml", charset="UTF-8"'},
        )
