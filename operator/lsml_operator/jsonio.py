"""JSON in and out of the operator through orjson, with the standard library for what orjson refuses.

The operator parses every answer of the API server and every watch event's child, and encodes every apply and
digest: with the standard library's codec that was about a tenth of its CPU in a ramp of 400 MLBackends
(bench/README.md). orjson refuses integers over 64 bits, which no Kubernetes field holds but a user's spec may.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # its error, or an integer over 64 bits: the standard library's answer or error
        return json.loads(data)
