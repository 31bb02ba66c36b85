"""The blueprint every route module adds its routes to, and what they share: the app's runtime, JSON bodies in, JSON out.

`routes.py` (Label Studio's API and probes), `prelabel_routes.py` and
`version_routes.py` all import this module and none imports another's
helpers, so the route modules form no import cycle (hack/lint checks). One
blueprint: one Basic auth and one error handling cover every route.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from lsml.server.errors import ApiError

bp = Blueprint("lsml", __name__)


@bp.before_request
def _refuse_nameless_query_parameters() -> None:
    """`?project=1&=x` is malformed, not an extra option to ignore (one look at the raw bytes, no parsing)."""
    query = request.query_string
    if query and (query.startswith(b"=") or b"&=" in query):
        raise ApiError(400, "invalid_query", "a query parameter has no name")


JSON_MIMETYPE = "application/json"


def current_runtime() -> Any:
    """This app's `Runtime` (settings, model registry, queue, predict gate; `lsml.server.app`)."""
    return current_app.extensions["lsml"]


# Bodies of the control routes (/setup, /webhook, /train, ...) are copied and re-encoded (state, RQ
# jobs, `dataclasses.asdict`), which recurses: a bound far below Python's recursion limit keeps them
# a 400 instead of a RecursionError. /predict bodies go to the model as parsed (orjson bounds them at 1024).
MAX_CONTROL_DEPTH = 64


def json_body(optional: bool = False, max_depth: int | None = MAX_CONTROL_DEPTH) -> dict:
    """The request's body as a JSON object, else a 400 naming what is wrong (`optional`: no body is `{}`)."""
    raw = request.get_data(cache=True)
    if not raw and optional:
        return {}
    return json_object(raw, max_depth)


def json_object(raw: bytes, max_depth: int | None = MAX_CONTROL_DEPTH) -> dict:
    """`raw` as a JSON object, else a 400 naming what is wrong; no request needed (`lsml.server.fast_predict`)."""
    if not raw:
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    try:
        body = orjson.loads(raw)  # /predict bodies are large: orjson parses them several times faster
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):  # the stdlib would only end in a RecursionError
            raise _too_deep(1024) from None
        body = _stdlib_json(raw)  # what orjson refuses (NaN, UTF-16, ...) the standard library decides
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", f"request body must be a JSON object, got {type(body).__name__}")
    if max_depth is not None and _deeper_than(body, max_depth):
        raise _too_deep(max_depth)
    return body


def _stdlib_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise _too_deep(sys.getrecursionlimit()) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


def _too_deep(limit: int) -> ApiError:
    return ApiError(400, "invalid_json", f"request body is nested more than {limit} levels deep")


def _deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests more than `limit` containers; iterative, so depth costs no stack."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays (scikit-learn and torch models return `np.float32` scores) as plain JSON."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(payload: Any, status: int = 200) -> Response:
    """`payload` as a JSON response (orjson, numpy values as plain JSON)."""
    return encoded_json_response(json_bytes(payload), status)


def encoded_json_response(data: bytes, status: int = 200) -> Response:
    """JSON already encoded by `json_bytes` as a response: `/predict`'s answer, encoded by code the fast path shares."""
    return current_app.response_class(data, status=status, mimetype=JSON_MIMETYPE)


def json_bytes(payload: Any) -> bytes:
    """`payload` encoded as JSON (numpy values as plain JSON; NaN becomes null); no app needed."""
    # orjson encodes 100 predictions ~20x faster than json.dumps (bench/README.md, "Predict latency");
    # what it refuses (ints over 64 bits, ...) falls back to the standard library.
    try:
        return orjson.dumps(payload, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(payload, default=_json_default).encode()
