"""The held-out split: which annotated tasks of a project no fit sees, so every version is scored on them.

Deterministic and stateless: a task is held out when a SHA-256 of
`"<project>:<task id>"` falls below `LSML_HOLDOUT_FRACTION`. Every process
(server, worker, a later fit) agrees without storing a list, the same task
stays on its side as the project grows, and raising the fraction only moves
tasks from training to held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

_SCALE = float(2**64)


def is_held_out(project: str, task_id: Any, fraction: float) -> bool:
    """Whether task `task_id` of `project` is held out at `fraction` (0: none, 1: all)."""
    if fraction <= 0 or task_id is None:
        return False
    digest = hashlib.sha256(f"{project}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE < fraction


def training_part(project: str, tasks: Iterable[dict], fraction: float) -> Iterator[dict]:
    """The tasks a fit may see."""
    for task in tasks:
        if not is_held_out(project, task.get("id"), fraction):
            yield task


def held_out_part(project: str, tasks: Iterable[dict], fraction: float) -> Iterator[dict]:
    """The tasks kept for evaluation."""
    for task in tasks:
        if is_held_out(project, task.get("id"), fraction):
            yield task


def event_task_id(data: Any) -> Any:
    """The task an annotation event is about (None for events naming no single task, e.g. ANNOTATIONS_DELETED)."""
    if isinstance(data, dict) and isinstance(data.get("task"), dict):
        return data["task"].get("id")
    return None


def filter_payload(project: str, event: str, data: Any, fraction: float) -> Any:
    """`data` without held-out tasks: a START_TRAINING payload's legacy `annotations` list is filtered; other
    payloads are returned unchanged (the caller drops a whole event about a held-out task)."""
    if event == "START_TRAINING" and isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return {**data, "annotations": list(training_part(project, data["annotations"], fraction))}
    return data
