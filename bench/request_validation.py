"""What checking a /predict body with `lsml.server.bodies.PredictBody` costs, in-process (issue 12).

Why in-process: the HTTP figures of bench/predict.py move by more than this cost between two runs on a
shared machine, so the cost itself is timed here, on the bodies bench/predict.py sends shaped the way
Label Studio 1.23.2 sends them (a task carries ~20 fields). Beside it: `orjson.loads` of the same body
(what every request pays already) and the hand-written checks /predict made before issue 12, written out
below as they were, so the difference is the model's alone. Best of 5 repeats.

Usage: .venv/bin/python bench/request_validation.py   (a few seconds)
"""

from __future__ import annotations

import timeit
from functools import partial
from typing import Any

import orjson

from lsml.model import project_key
from lsml.server import bodies


def hand_checks(body: dict) -> None:
    """/predict's checks before issue 12 (routes.py at 9ea84d6), minus the error messages."""
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ValueError("invalid_tasks")
    project_key(body.get("project"))
    label_config = body.get("label_config")
    if label_config is not None and not isinstance(label_config, str):
        raise ValueError("invalid_label_config")
    if not isinstance(body.get("params") or {}, dict):
        raise ValueError("invalid_params")


def task(i: int) -> dict[str, Any]:
    """A task as Label Studio's /predict sends it (data plus the fields it serializes beside)."""
    stamp = "2026-11-30T10:00:00.000000Z"
    return {
        "id": i,
        "data": {"text": " ".join(f"word{j}" for j in range(24))},
        "meta": {},
        "created_at": stamp,
        "updated_at": stamp,
        "is_labeled": False,
        "overlap": 1,
        "inner_id": i,
        "total_annotations": 0,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        "annotations": [],
        "predictions": [],
    }


def best_us(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    for n in (1, 100):
        raw = orjson.dumps(
            {
                "tasks": [task(i) for i in range(n)],
                "project": "3.1700000000",
                "label_config": "<View/>",
                "params": {"login": None, "password": None, "context": None},
            }
        )
        body = orjson.loads(raw)
        number = 20_000 if n == 1 else 2_000
        parse = best_us(partial(orjson.loads, raw), number)
        hand = best_us(partial(hand_checks, body), number)
        model = best_us(partial(bodies.parse, bodies.PredictBody, body), number)
        print(
            f"batch {n:3d} ({len(raw):6d} bytes): orjson.loads {parse:6.1f} us | hand checks {hand:5.1f} us | "
            f"PredictBody {model:5.1f} us ({model - hand:+.1f} us)"
        )


if __name__ == "__main__":
    main()
