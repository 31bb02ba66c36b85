"""Reading tasks, annotations and predictions from a real Label Studio."""

from __future__ import annotations

import pytest

from lsml.labelstudio import LabelStudioError

pytestmark = pytest.mark.labelstudio


def _choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def test_iter_tasks_pages_through_more_tasks_than_a_page(ls_client, ls_project):
    project = ls_project()["id"]
    summary = ls_client.import_tasks(project, [{"data": {"text": f"task {i}"}} for i in range(23)])
    assert summary["task_count"] == 23

    pages_requested = []
    ls_client.session.hooks["response"].append(
        lambda r, *a, **k: pages_requested.append(r.url) if "/api/tasks/" in r.url else None
    )
    tasks = list(ls_client.iter_tasks(project, page_size=5))
    assert sorted(t["data"]["text"] for t in tasks) == sorted(f"task {i}" for i in range(23))
    assert len({t["id"] for t in tasks}) == 23
    assert len(pages_requested) == 5  # 5+5+5+5+3, and no probe past the last page (Label Studio 404s there)


def test_only_annotated_tasks_come_with_their_annotations(ls_client, ls_project):
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"text": f"text {i}"} for i in range(7)])  # bare data dicts work too
    tasks = ls_client.tasks(project, page_size=3)
    labelled = {tasks[0]["id"]: "Positive", tasks[4]["id"]: "Negative"}
    for task_id, label in labelled.items():
        created = ls_client.create_annotation(task_id, _choice(label))
        assert created["result"][0]["value"]["choices"] == [label]

    annotated = list(ls_client.iter_tasks(project, page_size=3, only_annotated=True))
    assert {t["id"] for t in annotated} == set(labelled)
    for task in annotated:
        assert task["annotations"][0]["result"][0]["value"]["choices"] == [labelled[task["id"]]]


def test_predictions_of_a_task_and_a_project(ls_client, ls_project):
    project = ls_project()["id"]
    ls_client.import_tasks(
        project,
        [
            {
                "data": {"text": "x"},
                "predictions": [{"result": _choice("Positive"), "score": 0.75, "model_version": "m1"}],
            }
        ],
    )
    task = ls_client.tasks(project)[0]
    by_task = ls_client.predictions(task=task["id"])
    by_project = ls_client.predictions(project=project)
    assert [p["id"] for p in by_task] == [p["id"] for p in by_project]
    assert by_task[0]["score"] == pytest.approx(0.75) and by_task[0]["model_version"] == "m1"
    with pytest.raises(ValueError):
        ls_client.predictions()


def test_unknown_project_is_a_clear_404(ls_client):
    with pytest.raises(LabelStudioError) as caught:
        list(ls_client.iter_tasks(987654))
    assert caught.value.status == 404
    assert caught.value.path == "/api/tasks/"


def test_bad_label_config_is_refused_with_label_studios_reason(ls_client):
    with pytest.raises(LabelStudioError) as caught:
        ls_client.create_project("broken", "<View><Choices name='c' toName='missing'/></View>")
    assert caught.value.status == 400
    assert "label_config" in caught.value.message


def test_tasks_updated_after_a_time_are_those_whose_annotations_changed_since(ls_client, ls_project):
    """Catch-up's query (`iter_tasks_updated_after`): Label Studio 1.23.2 filters on the task's `updated_at`,
    which an annotation's save or delete moves; tasks without annotations are left out."""
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"text": f"text {i}"} for i in range(6)])
    ids = [t["id"] for t in ls_client.tasks(project)]
    ls_client.create_annotation(ids[0], _choice("Positive"))
    before = ls_client.newest_task_update(project)
    assert before is not None
    assert {t["id"] for t in ls_client.iter_tasks_updated_after(project, None)} == {ids[0]}
    assert list(ls_client.iter_tasks_updated_after(project, before)) == []

    later = [ls_client.create_annotation(task, _choice("Negative")) for task in ids[2:5]]
    found = list(ls_client.iter_tasks_updated_after(project, before, page_size=2))  # paged: 2 + 1
    assert sorted(t["id"] for t in found) == ids[2:5]
    assert sorted(a["id"] for t in found for a in t["annotations"]) == sorted(a["id"] for a in later)
    assert ls_client.project_summary(project)["total_annotations_number"] == 4
