"""`label_studio_ml.api.init_app(model_class=...)`: lsml's Flask app for a reference `_wsgi.py`.

A reference backend's `_wsgi.py` ends with `app = init_app(model_class=MyModel)`, and its
`test_api.py` fixtures call `init_app(model_class=MyModel).test_client()`. Both get lsml's
server (`lsml.server.app.create_app`): the model built once per process and project, in the
background; training queued (RQ with REDIS_URL, else a thread), not run inside the webhook
request; JSON errors; versions, pre-labelling and metrics routes.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from lsml.model import LabelStudioMLBase
from lsml.settings import Settings

_latest: Flask | None = None


def init_app(
    model_class: type, basic_auth_user: str | None = None, basic_auth_pass: str | None = None, **_ignored: Any
) -> Flask:
    """The app serving `model_class`; Basic auth from the arguments, else BASIC_AUTH_USER/BASIC_AUTH_PASS.

    Each call builds a new app (the reference reconfigures one module-level app); `_server`
    is the newest.
    """
    global _latest
    if not (isinstance(model_class, type) and issubclass(model_class, LabelStudioMLBase)):
        raise ValueError(f"model_class must be a subclass of LabelStudioMLBase, got {model_class!r}")
    from lsml.server.app import create_app

    settings = Settings.from_env()
    if basic_auth_user or basic_auth_pass:  # both or neither: Settings refuses one alone (SECURITY.md)
        settings = settings.replace(
            basic_auth_user=basic_auth_user or settings.basic_auth_user,
            basic_auth_pass=basic_auth_pass or settings.basic_auth_pass,
        )
    _latest = create_app(model_class, settings)
    return _latest


def __getattr__(name: str) -> Any:
    """`_server`: the reference's module-level app; here the newest `init_app` app (the base class's if none)."""
    if name == "_server":
        return _latest if _latest is not None else init_app(LabelStudioMLBase)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["init_app"]
