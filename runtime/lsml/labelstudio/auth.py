"""The two kinds of Label Studio API token, told apart by their shape.

Label Studio 1.23.2 issues *legacy* tokens (40 hex chars, sent as
`Authorization: Token <key>`) and *personal access tokens* (a JWT refresh
token that is never sent itself: it is exchanged at `POST /api/token/refresh`
for a short-lived access token sent as `Authorization: Bearer <access>`).
Using the wrong header gives 401, the single most common complaint about ML
backends downloading media, so the kind is detected from the token rather
than asked of the user.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

import requests
from requests.auth import AuthBase

from lsml.labelstudio.errors import LabelStudioError, LabelStudioUnreachable, response_error_text
from lsml.labelstudio.origin import origin

LEGACY = "legacy"
PERSONAL_ACCESS_TOKEN = "personal_access_token"

# Refresh an access token this many seconds before it expires, so a request
# does not leave with a token that dies in flight.
_EXPIRY_MARGIN_SECONDS = 30.0


def jwt_claims(token: str) -> dict | None:
    """The unverified payload of a JWT, or None when `token` is not one.

    Only used to tell token kinds apart and to read `exp`; Label Studio
    verifies signatures, we never need to.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


def token_kind(token: str) -> str:
    """LEGACY or PERSONAL_ACCESS_TOKEN, from the token's shape alone."""
    return PERSONAL_ACCESS_TOKEN if jwt_claims(token) is not None else LEGACY


def clean_token(token: str | None) -> str | None:
    """The token as Label Studio issued it: surrounding whitespace dropped (a Secret made with `kubectl create
    secret --from-file`, or an `.env` line, ends in a newline); None for none.

    Why a space, control or non-ASCII character inside is refused here, naming no value: no token Label Studio
    issues holds one (hex, or a JWT's base64url), and as a header it fails in http.client with a message that
    quotes the header, token included, into whatever log, status or event shows the error.
    """
    if token is None or not token.strip():
        return None
    token = token.strip()
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError(
            "the Label Studio token holds a space, a control or a non-ASCII character inside it, which no token "
            "Label Studio issues does (the value is not shown): copy it again from Account & Settings"
        )
    return token


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _sent_to(request: requests.PreparedRequest, bound_origin: str | None) -> bool:
    """Whether the prepared request goes to the origin a token is bound to.

    Why here as well as in the transport's choice of `auth`: requests calls an auth hook with the URL as it
    will be sent, after every rewrite, so a check here holds whatever a caller decided from the raw string.
    """
    return bound_origin is not None and origin(request.url) == bound_origin


class LegacyTokenAuth(AuthBase):
    """`Authorization: Token <key>`, only on requests to the Label Studio origin the token belongs to."""

    kind = LEGACY

    def __init__(self, token: str, label_studio_url: str) -> None:
        self._token = token
        self._origin = origin(label_studio_url)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _sent_to(request, self._origin):
            request.headers["Authorization"] = f"Token {self._token}"
        return request

    def handle_unauthorized(self) -> bool:
        """A legacy token cannot be renewed: a 401 is final."""
        return False

    def __repr__(self) -> str:  # never the token
        return "LegacyTokenAuth(***)"


class PersonalAccessTokenAuth(AuthBase):
    """`Authorization: Bearer <access>`, the access token minted from the refresh token, only on requests to
    the origin of `refresh_url` (Label Studio's).

    The access token is refreshed shortly before its `exp`, and once more when
    Label Studio answers 401 anyway (revoked, clock skew, server restarted
    with another secret); `handle_unauthorized` tells the transport whether a
    retry is worth it.
    """

    kind = PERSONAL_ACCESS_TOKEN

    def __init__(
        self, refresh_token: str, refresh_url: str, post: Callable[..., requests.Response], timeout: float
    ) -> None:
        self._refresh_token = refresh_token
        self._refresh_url = refresh_url
        self._origin = origin(refresh_url)
        self._post = post
        self._timeout = timeout
        self._access: str | None = None
        self._access_expires_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _sent_to(request, self._origin):
            request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        with self._lock:
            if self._access is None or time.time() >= self._access_expires_at - _EXPIRY_MARGIN_SECONDS:
                self._refresh()
            assert self._access is not None
            return self._access

    def invalidate(self) -> None:
        """Forget the access token; the next request mints a new one."""
        with self._lock:
            self._access = None

    def handle_unauthorized(self) -> bool:
        self.invalidate()
        return True

    def _refresh(self) -> None:
        try:
            response = self._post(self._refresh_url, json={"refresh": self._refresh_token}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise LabelStudioUnreachable(type(exc).__name__, method="POST", path="/api/token/refresh/") from None
        if response.status_code != 200:
            message = response_error_text(response, "refresh failed")
            raise LabelStudioError(
                response.status_code,
                f"personal access token refused ({message}); create a new one in Label Studio's Account & Settings",
                method="POST",
                path="/api/token/refresh/",
            )
        access = response.json().get("access")
        if not access:
            raise LabelStudioError(
                response.status_code, "no access token in the refresh answer", method="POST", path="/api/token/refresh/"
            )
        claims = jwt_claims(access) or {}
        self._access = access
        # No exp claim: trust it for a minute, then refresh.
        self._access_expires_at = float(claims.get("exp", time.time() + 60 + _EXPIRY_MARGIN_SECONDS))

    def __repr__(self) -> str:  # never the token
        return "PersonalAccessTokenAuth(***)"
