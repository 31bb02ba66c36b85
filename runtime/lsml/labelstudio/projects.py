"""Projects and what goes into them: label configs, imported tasks and files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsml.labelstudio.transport import Transport


class ProjectsMixin(Transport):
    def projects(self) -> list[dict]:
        """Every project the token's user can see (all pages)."""
        found: list[dict] = []
        page = 1
        while True:
            body = self.get_json("/api/projects/", params={"page": page, "page_size": 100})
            if isinstance(body, list):  # unpaginated answer
                return body
            found.extend(body.get("results", []))
            if not body.get("next"):
                return found
            page += 1

    def project(self, project: int) -> dict:
        return self.get_json(f"/api/projects/{int(project)}/")

    def project_summary(self, project: int) -> dict:
        """The project with one count only, `total_annotations_number` (non-cancelled annotations).

        Why `include=`: Label Studio 1.23.2's project GET computes every count field otherwise
        (`num_tasks_with_annotations` is a slow distinct query); catch-up reads this every interval.
        """
        return self.get_json(f"/api/projects/{int(project)}/", params={"include": "total_annotations_number"})

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict:
        return self.post_json("/api/projects/", {"title": title, "label_config": label_config, **fields})

    def delete_project(self, project: int) -> None:
        self.delete(f"/api/projects/{int(project)}/")

    def import_tasks(self, project: int, tasks: Iterable[dict]) -> dict:
        """Import task dicts (`{"data": {...}}` or bare data dicts); returns Label Studio's import summary.

        Label Studio without Redis imports synchronously, so the tasks exist
        when this returns.
        """
        return self.post_json(f"/api/projects/{int(project)}/import", list(tasks), timeout=max(self.timeout, 60))

    def upload_file(self, project: int, path: str | os.PathLike[str]) -> dict:
        """Import one file (an image, a CSV/JSON of tasks, ...) as Label Studio's Import dialog does.

        Media files become tasks whose data points at `/data/upload/<project>/<name>`.
        """
        file_path = Path(path)
        with file_path.open("rb") as handle:
            return self.request(
                "POST",
                f"/api/projects/{int(project)}/import",
                files={"file": (file_path.name, handle)},
                timeout=max(self.timeout, 60),
            ).json()

    def run_action(
        self, project: int, action: str, *, selected: list[int] | None = None, timeout: float | None = None
    ) -> dict:
        """Run a Data Manager action (e.g. `retrieve_tasks_predictions`) on some or all tasks."""
        items = {"all": False, "included": list(selected)} if selected is not None else {"all": True, "excluded": []}
        return self.post_json(
            "/api/dm/actions",
            {"selectedItems": items},
            params={"id": action, "project": int(project)},
            timeout=timeout or max(self.timeout, 120),
        )
