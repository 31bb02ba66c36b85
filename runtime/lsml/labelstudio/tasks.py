"""Reading a project's tasks (with their annotations and predictions) and writing annotations.

Label Studio 1.23.2 pages `GET /api/tasks` as `{"tasks": [...], "total": N, ...}`
and answers 404 past the last page, so iteration stops on the total rather
than probing for an empty page. Annotations and predictions are included only
with `fields=all`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from lsml.labelstudio.errors import LabelStudioUnexpectedResponse
from lsml.labelstudio.transport import Transport

DEFAULT_PAGE_SIZE = 100


class TasksMixin(Transport):
    def iter_tasks(
        self,
        project: int | str,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        only_annotated: bool = False,
        fields: str = "all",
    ) -> Iterator[dict]:
        """Yield every task of `project`, one page at a time (memory stays bounded)."""
        for tasks, _total in self.iter_task_pages(project, page_size, fields=fields):
            for task in tasks:
                if only_annotated and not _is_annotated(task):
                    continue
                yield task

    def iter_task_pages(
        self,
        project: int | str,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        fields: str = "all",
        needs_all: Callable[[list[dict]], bool] | None = None,
    ) -> Iterator[tuple[list[dict], int | None]]:
        """Yield `(tasks, total)` per page: callers that report progress need the total up front.

        `needs_all(tasks)`: a page read with lighter `fields` that it is true for
        is read again with `fields="all"`, and so is every later page (a
        project's pages are alike: once predictions show up, they keep showing).
        """
        page = 1
        seen = 0
        while True:
            tasks, total = self.task_page(project, page, page_size, fields=fields)
            if fields != "all" and needs_all is not None and needs_all(tasks):
                fields = "all"
                tasks, total = self.task_page(project, page, page_size, fields=fields)
            if tasks:
                yield tasks, total
            seen += len(tasks)
            # Trust the total when given: the server may cap page_size below ours.
            if not tasks or (seen >= total if total is not None else len(tasks) < page_size):
                return
            page += 1

    def task_page(
        self, project: int | str, page: int, page_size: int = DEFAULT_PAGE_SIZE, *, fields: str = "all"
    ) -> tuple[list[dict], int | None]:
        """One page (from 1) of the project's tasks and the total. `fields="task_only"` leaves out
        annotations and predictions (3-5x cheaper for Label Studio) but keeps their counts
        (`total_annotations`, `total_predictions`)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        body = self.get_json(
            "/api/tasks/", params={"project": int(project), "page": int(page), "page_size": page_size, "fields": fields}
        )
        return _page_tasks(body, self.absolute_url("/api/tasks/"))

    def iter_tasks_updated_after(
        self, project: int | str, since: str | None, page_size: int = DEFAULT_PAGE_SIZE, *, only_annotated: bool = True
    ) -> Iterator[dict]:
        """Tasks (with annotations) whose `updated_at` is after `since` (Label Studio's own ISO time; None: all).

        Label Studio 1.23.2 moves a task's `updated_at` whenever one of its annotations is saved or
        deleted (`Annotation.update_task`), after the annotation's own `updated_at`, so this finds
        every annotation changed after `since`. The filter is the Data Manager's
        (`filter:tasks:updated_at`, type `Datetime`, format `%Y-%m-%dT%H:%M:%S.%fZ`, UTC), paged by id
        so a task updated while we page stays where it was.
        """
        items: list[dict[str, Any]] = []
        if since is not None:
            items.append(
                {
                    "filter": "filter:tasks:updated_at",
                    "operator": "greater",
                    "type": "Datetime",
                    "value": dm_time(since),
                }
            )
        if only_annotated:
            items.append(
                {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0}
            )
        query = json.dumps({"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:id"]})
        page, seen = 1, 0
        while True:
            body = self.get_json(
                "/api/tasks/",
                params={"project": int(project), "page": page, "page_size": page_size, "fields": "all", "query": query},
            )
            tasks, total = _page_tasks(body, self.absolute_url("/api/tasks/"))
            yield from tasks
            seen += len(tasks)
            if not tasks or (seen >= total if total is not None else len(tasks) < page_size):
                return
            page += 1

    def newest_task_update(self, project: int | str) -> str | None:
        """The newest task `updated_at` of the project (Label Studio's clock), None for a project without tasks."""
        query = json.dumps({"filters": {"conjunction": "and", "items": []}, "ordering": ["-tasks:updated_at"]})
        body = self.get_json(
            "/api/tasks/",
            params={"project": int(project), "page": 1, "page_size": 1, "fields": "task_only", "query": query},
        )
        tasks, _total = _page_tasks(body, self.absolute_url("/api/tasks/"))
        return tasks[0].get("updated_at") if tasks else None

    def tasks(self, project: int, page_size: int = DEFAULT_PAGE_SIZE, **kwargs: Any) -> list[dict]:
        return list(self.iter_tasks(project, page_size, **kwargs))

    def task(self, task: int) -> dict:
        """One task with its annotations and predictions.

        Note: reading a task with no prediction makes Label Studio ask the
        project's ML backend for one.
        """
        return self.get_json(f"/api/tasks/{int(task)}/")

    def create_annotation(self, task: int, result: list[dict], **fields: Any) -> dict:
        """Submit an annotation as a person would (fires ANNOTATION_CREATED webhooks)."""
        return self.post_json(f"/api/tasks/{int(task)}/annotations/", {"result": result, **fields})

    def annotations(self, task: int) -> list[dict]:
        return self.get_json(f"/api/tasks/{int(task)}/annotations/")

    def import_predictions(self, project: int, predictions: list[dict]) -> int:
        """Store predictions in bulk (`POST /api/projects/{id}/import/predictions`, Label Studio 1.23.2's
        `ImportPredictionsAPI`): items `{"task", "result", "score", "model_version"}`. Not idempotent:
        the caller must not send a task twice. Returns how many Label Studio created."""
        if not predictions:
            return 0
        body = self.post_json(f"/api/projects/{int(project)}/import/predictions", predictions)
        return int(body.get("created", len(predictions))) if isinstance(body, dict) else len(predictions)

    def predictions(self, *, task: int | None = None, project: int | None = None) -> list[dict]:
        """Stored predictions of one task or of a whole project."""
        if (task is None) == (project is None):
            raise ValueError("pass exactly one of task= or project=")
        params = {"task": int(task)} if task is not None else {"project": int(project)}  # type: ignore[arg-type]
        body = self.get_json("/api/predictions/", params=params)
        return body.get("results", []) if isinstance(body, dict) else body

    def prediction(self, prediction: int) -> dict:
        """One stored prediction (`result`, `model_version`, `task`), e.g. an annotation's `parent_prediction`."""
        body = self.get_json(f"/api/predictions/{int(prediction)}/")
        if not isinstance(body, dict):
            raise LabelStudioUnexpectedResponse(200, f"/api/predictions/{int(prediction)}/", "not a JSON object")
        return body


def dm_time(iso: str) -> str:
    """Label Studio's ISO time (`2026-12-04T17:27:28.123456Z`, or with `+00:00`) in the Data Manager
    filter's format (`%Y-%m-%dT%H:%M:%S.%fZ`, UTC)."""
    from datetime import datetime, timezone

    parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _page_tasks(body: Any, url: str) -> tuple[list[dict], int | None]:
    if isinstance(body, list):  # older servers: a bare list
        return body, None
    if isinstance(body, dict) and isinstance(body.get("tasks"), list):
        total = body.get("total")
        return list(body["tasks"]), total if isinstance(total, int) else None
    raise LabelStudioUnexpectedResponse(200, url, f"JSON {type(body).__name__} without a 'tasks' list")


def _is_annotated(task: dict) -> bool:
    annotations = task.get("annotations")
    if annotations is not None:
        return any(not a.get("was_cancelled") for a in annotations)
    return bool(task.get("total_annotations") or task.get("is_labeled"))
