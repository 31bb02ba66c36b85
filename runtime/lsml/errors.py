"""The root of the exceptions lsml raises itself, and the one "Redis is unavailable" type.

Why a root: a caller (a model author's code, a deployment script, the operator) can catch everything lsml
raises on purpose with one `except LsmlError`, apart from bugs. Each class keeps the built-in base its callers
already catch (`ValueError`, `RuntimeError`, `PermissionError`, ...): the root is added beside it.

This module imports nothing: `lsml.labelstudio` (which the operator imports) derives from it too.
"""

from __future__ import annotations


class LsmlError(Exception):
    """Any error lsml raises on purpose (bad input, a refused request, an unavailable service)."""


class RedisUnavailable(LsmlError, RuntimeError):
    """Redis cannot be reached, or stayed unreachable past a grace period.

    One type for the state store, the training and pre-labelling queues and a job riding out an outage
    (`StateUnavailable`, `QueueUnavailable` and `RedisOutage` are its old names). `code` says what a
    request cannot do meanwhile: the server answers 503 with it (`lsml.server.errors`) and `Retry-After`,
    and keeps serving predictions.
    """

    def __init__(self, message: str = "Redis is unavailable", *, code: str = "redis_unavailable") -> None:
        super().__init__(message)
        self.code = code


class LsmlInterrupt(BaseException):
    """The root of what lsml raises *into* running code to stop it, which is no error of that code.

    A BaseException, like KeyboardInterrupt, so that a model's own `except Exception:` cannot swallow it and
    carry on; `finally` blocks and context managers run as usual. Catch it only to clean up and re-raise.
    """
