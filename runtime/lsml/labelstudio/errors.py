"""The one exception type callers of the Label Studio client catch.

Label Studio's own error text is the most useful thing to show a person (it
says *why* a backend URL was refused, which field is wrong, ...), so it is
kept; the token never is, because these messages end up in logs, CLI output
and Kubernetes status conditions.
"""

from __future__ import annotations

from typing import Any

from lsml.errors import LsmlError


class LabelStudioError(LsmlError):
    """Label Studio answered with an error, or could not be reached (status None)."""

    def __init__(self, status: int | None, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        code = f"HTTP {status}" if status is not None else "unreachable"
        super().__init__(f"Label Studio {where}{code}: {message}")


class LabelStudioUnreachable(LabelStudioError):
    """No HTTP answer at all (connection refused, DNS, timeout): worth retrying later."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(None, message, method=method, path=path)


class LabelStudioUnexpectedResponse(LabelStudioError):
    """A 2xx answer that is not what Label Studio sends (not JSON, or not the expected shape).

    Seen behind a misconfigured proxy or login page (HTML with 200), or from a
    host that is not Label Studio at all; named here, at the response, because
    otherwise it surfaces as an AttributeError deep in the caller.
    """

    def __init__(self, status: int, url: str, what: str, *, method: str = "GET") -> None:
        super().__init__(
            status, f"expected JSON from {url}, got {what}: is this URL Label Studio's API?", method=method, path=url
        )


def error_text(body: Any, fallback: str) -> str:
    """Turn one of Label Studio's error bodies into one readable line.

    Label Studio 1.23.2 answers errors as
    `{"status_code", "detail", "validation_errors": {field: [msgs]}, "exc_info", ...}`
    (DRF's plain `{"detail": ...}` or `{field: [msgs]}` also occur); the
    validation errors carry the real reason (e.g. the ML_BLOCK_LOCAL_IP refusal).
    """
    if not isinstance(body, dict):
        return fallback
    parts: list[str] = []
    validation = body.get("validation_errors")
    if isinstance(validation, dict) and validation:
        parts.extend(_flatten_field_errors(validation))
    elif not body.get("detail") and not validation:
        # DRF's bare serializer errors: {field: [msgs]}.
        parts.extend(_flatten_field_errors({k: v for k, v in body.items() if k not in _META_KEYS}))
    detail = body.get("detail")
    if detail and str(detail) not in " ".join(parts):
        parts.insert(0, str(detail))
    return "; ".join(p for p in parts if p) or fallback


def response_error_text(response: Any, fallback: str) -> str:
    """`error_text` of an error response's JSON body (the HTTP reason, else `fallback`, when there is none)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_text(body, response.reason or fallback)


_META_KEYS = {"id", "status_code", "version", "type", "exc_info", "validation_errors", "detail"}


def _flatten_field_errors(errors: dict) -> list[str]:
    lines = []
    for field, messages in errors.items():
        if isinstance(messages, (list, tuple)):
            text = " ".join(str(m) for m in messages)
        else:
            text = str(messages)
        lines.append(text if field in ("non_field_errors", "detail") else f"{field}: {text}")
    return lines
