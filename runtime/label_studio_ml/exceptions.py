"""`label_studio_ml.exceptions`: the reference's error helpers, answered through lsml's JSON errors.

lsml's server already turns every exception of a route into a JSON error (model errors: 500
without the exception text, which goes to the log: SECURITY.md), so `exception_handler` adds
nothing; `AnswerException` raised by a route or by `predict` is answered with its status and message
(the model chose both), as in the reference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from lsml.server.errors import ApiError


class AnswerException(ApiError):
    """An error with an HTTP status for the client: `{"error": "answer", "message": msg}`."""

    def __init__(self, status: int, msg: str = "", result: Any = None) -> None:
        super().__init__(status, "answer", msg or f"error {status}")
        self.msg = msg
        self.result = result


def exception_handler(f: Callable[..., Any]) -> Callable[..., Any]:
    """The reference's route decorator: lsml's error handlers already answer every exception as JSON."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs)

    return wrapper


__all__ = ["AnswerException", "exception_handler"]
