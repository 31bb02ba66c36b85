"""What the API server refused, as exception types (after kopf's ``_cogs/clients/errors.py``).

Callers say which refusal they handle by catching its type (``except Invalid:`` for a merge
the API server will not accept, ``except NotFound:`` for an object that is gone) instead of
comparing status numbers at each call site; anything else keeps propagating as ``APIError``.
No network code here, so tests raise the same types from their in-memory fakes.
"""

from __future__ import annotations

from http import HTTPStatus


class APIError(Exception):
    """The API server answered with an error status. ``body`` is its Status object as text."""

    def __init__(self, status: int, reason: str = "", body: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.body = body


class ClientError(APIError):
    """4xx: the request itself was refused; retrying it unchanged will not help."""


class ServerError(APIError):
    """5xx: the API server (or a webhook behind it) failed; worth retrying."""


class Unauthorized(ClientError):
    """401: the credentials were not accepted."""


class Forbidden(ClientError):
    """403: RBAC (or an admission policy) does not allow this call."""


class NotFound(ClientError):
    """404: no such object (or API)."""


class Conflict(ClientError):
    """409: the object exists already (create), or was changed meanwhile."""


class Invalid(ClientError):
    """422: the object as sent (or as merged by server-side apply) fails validation."""


class TooManyRequests(ClientError):
    """429: throttled by API priority and fairness."""


_BY_STATUS: dict[int, type[APIError]] = {
    HTTPStatus.UNAUTHORIZED: Unauthorized,
    HTTPStatus.FORBIDDEN: Forbidden,
    HTTPStatus.NOT_FOUND: NotFound,
    HTTPStatus.CONFLICT: Conflict,
    HTTPStatus.UNPROCESSABLE_ENTITY: Invalid,
    HTTPStatus.TOO_MANY_REQUESTS: TooManyRequests,
}


def api_error(status: int, reason: str = "", body: str = "") -> APIError:
    """The most specific error type for an answer's status."""
    cls = _BY_STATUS.get(status) or (ClientError if 400 <= status < 500 else ServerError if status >= 500 else APIError)
    return cls(status, reason, body)
