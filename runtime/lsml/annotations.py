"""A training set kept in step with Label Studio's annotations: one row per task.

Why: a backend that retrains on every annotation event should not refetch
the whole project each time. It keeps its training set (task id -> row) in
the published version, folds each event (and the events coalesced with it)
into it, and rebuilds it from Label Studio's API only on START_TRAINING or
when it has nothing yet. What a row holds (text, image features, ...) is the
model's business: it passes `row(task, annotation) -> dict | None`, and a
row must carry the annotation's id under "annotation" (ANNOTATIONS_DELETED
names annotations, not tasks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lsml.model import LabelStudioMLBase

logger = logging.getLogger(__name__)

Row = Callable[[dict, dict], dict | None]


def first_choice(annotation: dict, from_name: str) -> str | None:
    """The first choice of the `from_name` Choices region of a non-cancelled annotation, else None."""
    if not annotation or annotation.get("was_cancelled"):
        return None
    for region in annotation.get("result") or []:
        if region.get("from_name") == from_name and str(region.get("type", "choices")).lower() == "choices":
            choices = (region.get("value") or {}).get("choices") or []
            if choices:
                return str(choices[0])
    return None


def dataset_from_tasks(tasks: Iterable[dict], row: Row) -> dict[str, dict]:
    """Rows from annotated tasks (the API's or the legacy /train list): the newest usable annotation wins."""
    dataset: dict[str, dict] = {}
    for task in tasks:
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        annotations.sort(key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id") or 0))
        for annotation in reversed(annotations):
            item = row(task, annotation)
            if item is not None:
                dataset[str(task.get("id"))] = item
                break
    return dataset


def apply_event(dataset: dict[str, dict], event: str, data: dict, row: Row) -> None:
    """Fold one annotation event into `dataset` in place (created/updated: set or drop; deleted: drop)."""
    task = data.get("task") or {}
    key = str(task["id"]) if task.get("id") is not None else None
    if event in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        item = row(task, data.get("annotation") or {})
        if key is not None and item is not None:
            dataset[key] = item
        elif key is not None:
            dataset.pop(key, None)
    elif event == "ANNOTATION_DELETED":
        if key is not None:
            dataset.pop(key, None)
    elif event == "ANNOTATIONS_DELETED":
        deleted = {a.get("id") for a in data.get("annotations") or [] if isinstance(a, dict)}
        for stale in [k for k, item in dataset.items() if item.get("annotation") in deleted]:
            del dataset[stale]


def updated_training_set(
    model: LabelStudioMLBase,
    previous: dict[str, dict],
    event: str,
    data: dict,
    row: Row,
    coalesced: list[dict] | None = None,
) -> dict[str, dict]:
    """The training set after `event` (what a model's `fit` starts from).

    START_TRAINING: every annotated task, from the legacy /train list when
    `data` carries one, else from Label Studio's API. Annotation events:
    `previous` (fetched from the API first when empty and Label Studio is
    known, so annotations made before the backend was connected count) with
    the coalesced events and this one folded in, oldest first.
    """
    if event == "START_TRAINING":
        tasks: Any = data.get("annotations")
        return dataset_from_tasks(tasks if isinstance(tasks, list) else model.fetch_annotated_tasks(), row)
    dataset = dict(previous)
    if not dataset and model.get_label_studio_url():
        try:
            dataset = dataset_from_tasks(model.fetch_annotated_tasks(), row)
        except Exception as exc:  # Label Studio unreachable: learn from the events alone
            logger.warning(
                "project %s: could not fetch annotated tasks (%s); training on events only",
                model.project_id,
                type(exc).__name__,
            )
    for item in list(coalesced or []) + [{"event": event, "data": data}]:
        apply_event(dataset, item["event"], item["data"] or {}, row)
    return dataset
