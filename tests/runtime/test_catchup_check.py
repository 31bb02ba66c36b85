"""`lsml.catchup.Checker` against a real HTTP server answering as Label Studio 1.23.2 does (shapes read from its
API), for what a real Label Studio cannot be made to show quickly: annotations hours old."""

from __future__ import annotations

import json

from lsml.catchup import Checker
from lsml.settings import Settings
from lsml.state import MemoryState
from lsml.store import LocalModelStore
from lsml.training import EmbeddedQueue
from lsml.watermark import STATE_KEY
from tests.fixtures.http_recorder import Answer

OLD = "2026-01-01T08:00:00.000000Z"
NEWEST = "2026-01-01T12:00:00.000000Z"


def test_a_baseline_keeps_every_id_but_the_times_of_recent_changes_only(tmp_path, http_recorder):
    label_studio = http_recorder()
    headers = {"Content-Type": "application/json"}
    annotations = [{"id": i, "updated_at": OLD, "created_at": OLD, "result": []} for i in range(1, 301)]
    annotations.append({"id": 301, "updated_at": NEWEST, "created_at": NEWEST, "result": []})
    tasks = [{"id": 1000 + a["id"], "updated_at": a["updated_at"], "annotations": [a]} for a in annotations]

    def task_pages(request) -> Answer:
        if "task_only" in request.path:  # the newest task update (ordering -updated_at, one task)
            return Answer(200, json.dumps({"tasks": [tasks[-1]], "total": len(tasks)}).encode(), headers)
        return Answer(200, json.dumps({"tasks": tasks, "total": len(tasks)}).encode(), headers)

    label_studio.routes["/api/tasks/"] = task_pages
    label_studio.routes["/api/projects/"] = Answer(
        200, json.dumps({"id": 3, "total_annotations_number": 301, "label_config": "<View/>"}).encode(), headers
    )
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=label_studio.url, label_studio_api_key="k")
    store = LocalModelStore(tmp_path / "models")
    with store.staging("3") as staged:
        store.publish("3", staged)
    state = MemoryState()
    queue = EmbeddedQueue("tests.fixtures.sample_models:CountingModel", settings)
    checker = Checker(settings, store, state, queue, lambda: ("ANNOTATION_CREATED",))

    assert checker.check("3").outcome == "baseline"
    saved = state.get("3", STATE_KEY)["watermark"]
    assert saved["ids"] == [[1, 301]] and saved["complete"]
    assert saved["seen"] == {"301": NEWEST}  # within CLOCK_MARGIN of the mark; the 300 older ones are below it
    assert saved["updated_at"] == "2026-01-01T11:59:55Z"
    assert checker.check("3").outcome == "current"  # nothing new: no training
    assert queue.stats()["queued"] == 0


def test_more_missed_changes_than_a_request_keeps_become_one_full_retrain_that_accounts_for_them(
    tmp_path, http_recorder, monkeypatch
):
    """Beyond MAX_EVENTS (1000; 3 here) catch-up asks for START_TRAINING; the version it publishes records
    every id it covered, so the next check finds nothing."""
    from lsml import catchup
    from lsml.state import make_state

    monkeypatch.setattr(catchup, "MAX_EVENTS", 3)
    label_studio = http_recorder()
    headers = {"Content-Type": "application/json"}
    tasks = [
        {"id": 1000 + i, "updated_at": OLD, "annotations": [{"id": i, "updated_at": OLD, "result": []}]}
        for i in range(1, 11)
    ]

    def task_pages(request) -> Answer:
        newest = max(tasks, key=lambda t: t["updated_at"])
        if "task_only" in request.path:
            return Answer(200, json.dumps({"tasks": [newest], "total": len(tasks)}).encode(), headers)
        if "updated_at" in request.path:  # the changed-since query: the recorder plays the filter
            changed = [t for t in tasks if t["updated_at"] > "2026-01-01T09"]
            return Answer(200, json.dumps({"tasks": changed, "total": len(changed)}).encode(), headers)
        return Answer(200, json.dumps({"tasks": tasks, "total": len(tasks)}).encode(), headers)

    def project(_request) -> Answer:
        body = {"id": 3, "total_annotations_number": len(tasks), "label_config": "<View/>"}
        return Answer(200, json.dumps(body).encode(), headers)

    label_studio.routes["/api/tasks/"] = task_pages
    label_studio.routes["/api/projects/"] = project
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=label_studio.url, label_studio_api_key="k")
    store = LocalModelStore(settings.model_dir)
    with store.staging("3") as staged:
        (staged / "fit.json").write_text('{"event": "ANNOTATION_CREATED"}')  # what CountingModel loads
        store.publish("3", staged)
    state = make_state(settings)  # the state run_training reads too
    queue = EmbeddedQueue("tests.fixtures.sample_models:CountingModel", settings)
    checker = Checker(settings, store, state, queue, lambda: ("ANNOTATION_CREATED", "START_TRAINING"))
    assert checker.check("3").outcome == "baseline"

    tasks.extend(
        {"id": 1000 + i, "updated_at": NEWEST, "annotations": [{"id": i, "updated_at": NEWEST, "result": []}]}
        for i in range(11, 16)
    )
    result = checker.check("3")
    assert result.outcome == "recovered" and result.events == {"START_TRAINING": 1}
    queue.wait(str(result.job))
    version = store.latest("3")
    assert version is not None and version.name == "v2"
    assert version.metadata["event"] == "START_TRAINING"
    assert version.metadata["watermark"]["ids"] == [[1, 15]] and version.metadata["watermark"]["complete"]
    assert checker.check("3").outcome == "current"
