"""`/predict` served beside Flask, not through it: the request Label Studio sends most, at a fraction of the CPU.

Why: per `/predict`, Flask's request and app contexts, URL matching, hooks and werkzeug's Request and Response
cost more CPU than the model itself at batch 1 (bench/README.md, "Serving overhead against the model's own CPU",
issue 21 part 1). The common request (`POST /predict`, no query, a Content-Length within the limit, credentials
right when Basic auth is on) is answered here with the route's own code (`routes.predict_answer`), the same
metrics and the same bytes out; everything else, and every error, goes through Flask as before:

* a request this path does not take is handed to Flask untouched (its body not read);
* a request whose answer is an error is rendered by Flask's error handlers and after-request hooks, in a request
  context made for it, so the status, JSON body, headers and metrics are those of the Flask path;
* the path turns itself off (Flask serves everything) when the app carries a hook, a signal receiver or a
  `/predict` route it does not know (a `_wsgi.py` that adds its own `before_request`, say): what it skips must be
  what it does itself. `tests/runtime/test_fast_predict.py` fails when lsml's own app turns it off.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, signals
from werkzeug.datastructures import Authorization

from lsml.server import metrics, routes
from lsml.server.auth import basic_credentials_match
from lsml.server.blueprint import JSON_MIMETYPE, json_object

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("lsml.server")

PREDICT_ENDPOINT = "lsml.predict"

#: The hooks Flask runs around `/predict` that this path does itself, by module and qualified name. The admin-route
#: check has nothing to do for `/predict`; the nameless-parameter check has nothing to do without a query.
COVERED_HOOKS = frozenset(
    {
        "lsml.loader.ModelRegistry.start",  # called here too
        "lsml.server.metrics.install.<locals>._start_timer",  # the start time, taken here
        "lsml.server.metrics.install.<locals>._observe",  # metrics.observe_request, called here
        "lsml.server.auth.install.<locals>._check_admin_routes",  # /predict is no admin route
        "lsml.server.auth.install.<locals>._check_basic_auth",  # auth.basic_credentials_match, checked here
        "lsml.server.blueprint._refuse_nameless_query_parameters",  # no query string is taken here
    }
)


def _name(fn: Any) -> str:
    fn = getattr(fn, "__func__", fn)  # a bound method: its function's name
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def uncovered(app: Flask) -> list[str]:
    """What in `app` this path would skip without doing it itself; empty when it may serve `/predict`."""
    found = []
    for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        for scope, hooks in table.items():
            if scope not in (None, "lsml"):
                continue  # a blueprint of the user's: not around lsml's /predict
            found += [f"hook {_name(fn)}" for fn in hooks if _name(fn) not in COVERED_HOOKS]
    for scope, processors in app.url_value_preprocessors.items():
        if scope in (None, "lsml"):
            found += [f"url value preprocessor {_name(fn)}" for fn in processors]
    for signal in (signals.request_started, signals.request_finished, signals.got_request_exception):
        if signal.receivers:
            found.append(f"receivers of Flask's {signal.name} signal")
    try:
        endpoint, _ = app.url_map.bind("lsml").match("/predict", "POST")
    except Exception as exc:  # noqa: BLE001 - any routing answer but lsml's own view means: not ours to serve
        found.append(f"/predict routes to no view ({type(exc).__name__})")
    else:
        if endpoint != PREDICT_ENDPOINT or app.view_functions.get(endpoint) is not routes.predict:
            found.append(f"/predict routes to {endpoint}, not lsml's view")
    return found


class PredictFastPath:
    """The WSGI app in front of Flask's (`app.wsgi_app`): takes the common `/predict`, hands over the rest."""

    def __init__(self, app: Flask, flask_wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.flask_wsgi_app = flask_wsgi_app
        self._on: bool | None = None  # decided at the first /predict, once every hook is in (`uncovered`)

    @property
    def on(self) -> bool:
        if self._on is None:
            missing = uncovered(self.app)
            if missing:
                logger.info("/predict is served through Flask: the fast path does not cover %s", "; ".join(missing))
            self._on = not missing
        return self._on

    def __call__(self, wsgi_vars: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            wsgi_vars.get("PATH_INFO") != "/predict"
            or wsgi_vars.get("REQUEST_METHOD") != "POST"
            or wsgi_vars.get("QUERY_STRING")
            or "HTTP_TRANSFER_ENCODING" in wsgi_vars
            or not self.on
        ):
            return self.flask_wsgi_app(wsgi_vars, start_response)
        length = _content_length(wsgi_vars)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if not length or (limit is not None and length > limit):
            return self.flask_wsgi_app(wsgi_vars, start_response)  # Flask's 400 or 413, unread
        rt = self.app.extensions["lsml"]
        settings = rt.settings
        if settings.basic_auth_enabled and not basic_credentials_match(
            settings, Authorization.from_header(wsgi_vars.get("HTTP_AUTHORIZATION"))
        ):
            return self.flask_wsgi_app(wsgi_vars, start_response)  # Flask's 401
        t0 = time.perf_counter()
        try:
            raw = wsgi_vars["wsgi.input"].read(length)
        except (OSError, ValueError):  # a client too slow (the worker's read timeout) or gone: as werkzeug sees it
            raw = b""
        wsgi_vars["wsgi.input"] = io.BytesIO(raw)  # whoever reads next (Flask, for an error) reads the same bytes
        if len(raw) != length:
            return self.flask_wsgi_app(wsgi_vars, start_response)  # short: Flask's 400 (werkzeug's ClientDisconnected)
        try:
            rt.registry.start()
            data = routes.predict_answer(rt, json_object(raw, max_depth=None))
        except Exception as exc:  # noqa: BLE001 - rendered as Flask renders it, by its error handlers
            wsgi_vars[metrics.REQUEST_T0] = t0
            return self._answer_error(wsgi_vars, start_response, exc)
        start_response("200 OK", [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(data)))])
        metrics.observe_request("POST", "/predict", 200, t0)
        return [data]

    def _answer_error(
        self, wsgi_vars: WSGIEnvironment, start_response: StartResponse, exc: Exception
    ) -> Iterable[bytes]:
        """The error's answer from Flask's own handlers and after-request hooks, as the Flask path gives it."""
        with self.app.request_context(wsgi_vars):
            response = self.app.finalize_request(self.app.handle_user_exception(exc))
        return response(wsgi_vars, start_response)


def _content_length(wsgi_vars: WSGIEnvironment) -> int | None:
    try:
        length = int(wsgi_vars.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def install(app: Flask) -> None:
    """Put the fast path in front of Flask's WSGI app (after every hook and route is in: `create_app`'s end)."""
    app.wsgi_app = PredictFastPath(app, app.wsgi_app)  # type: ignore[method-assign,assignment]
