"""JSON errors: every failure answers `{"error": "<code>", "message": "..."}`.

Model exceptions become 500 without the exception text or a traceback in the
body (both go to the server log); HTTP errors (404, 405, 413, ...) keep
their status with a JSON body.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from lsml.errors import LsmlError, RedisUnavailable

logger = logging.getLogger("lsml.server")


class ApiError(LsmlError):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    """The one JSON error shape; also counts the error code for /metrics."""
    from lsml.server import metrics

    metrics.count_error(code)
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _code_for(exc: HTTPException) -> str:
    return {413: "body_too_large", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.code or 500, (exc.name or "error").lower().replace(" ", "_")
    )


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    # Redis down: refuse fast, predictions keep serving. `code` names what cannot be done meanwhile:
    # `training_unavailable` (the queues), `state_unavailable` (the project's config is not in this process)
    @app.errorhandler(RedisUnavailable)
    def _redis_unavailable(exc: RedisUnavailable):
        return error_response(503, exc.code, str(exc), {"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than {limit} bytes (LSML_MAX_BODY_BYTES)"
        # werkzeug's own headers stay (a 405's `Allow`, RFC 9110); the body is ours, JSON
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, _code_for(exc), message, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=True)
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
