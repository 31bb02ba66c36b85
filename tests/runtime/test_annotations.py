"""lsml.annotations: the per-task training set the examples keep in step with annotation events."""

import pytest

from lsml import LabelStudioMLBase
from lsml.annotations import apply_event, dataset_from_tasks, first_choice, updated_training_set
from lsml.model import BuildContext, build_model
from lsml.state import MemoryState
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.unit


def choice(label, from_name="sentiment"):
    return {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": [label]}}


def row(task, annotation):
    label = first_choice(annotation, "sentiment")
    return None if label is None else {"text": task["data"]["text"], "label": label, "annotation": annotation.get("id")}


def event(task_id, label, annotation_id):
    return {
        "task": {"id": task_id, "data": {"text": f"t{task_id}"}},
        "annotation": {"id": annotation_id, "result": [choice(label)]},
    }


def test_first_choice_reads_only_the_named_choices_of_a_usable_annotation():
    assert first_choice({"result": [choice("B", "other"), choice("A")]}, "sentiment") == "A"
    assert first_choice({"result": [choice("A")], "was_cancelled": True}, "sentiment") is None
    assert first_choice({"result": [{"from_name": "sentiment", "type": "labels", "value": {}}]}, "sentiment") is None
    assert first_choice({}, "sentiment") is None


def test_dataset_from_tasks_keeps_the_newest_usable_annotation_per_task():
    tasks = [
        {
            "id": 1,
            "data": {"text": "a"},
            "annotations": [
                {"id": 10, "created_at": "2026-01-01", "result": [choice("Old")]},
                {"id": 11, "created_at": "2026-01-02", "result": [choice("New")]},
                {"id": 12, "created_at": "2026-01-03", "result": [choice("Cancelled")], "was_cancelled": True},
            ],
        },
        {"id": 2, "data": {"text": "b"}, "annotations": [{"id": 20, "result": []}]},
    ]
    assert dataset_from_tasks(tasks, row) == {"1": {"text": "a", "label": "New", "annotation": 11}}


def test_events_set_replace_and_drop_rows():
    dataset = {}
    apply_event(dataset, "ANNOTATION_CREATED", event(1, "A", 10), row)
    apply_event(dataset, "ANNOTATION_CREATED", event(2, "B", 20), row)
    apply_event(dataset, "ANNOTATION_UPDATED", event(1, "B", 10), row)
    assert dataset == {
        "1": {"text": "t1", "label": "B", "annotation": 10},
        "2": {"text": "t2", "label": "B", "annotation": 20},
    }
    apply_event(dataset, "ANNOTATION_UPDATED", {"task": {"id": 2}, "annotation": {"id": 20, "result": []}}, row)
    assert set(dataset) == {"1"}  # an emptied annotation leaves the set
    apply_event(dataset, "ANNOTATION_CREATED", event(3, "A", 30), row)
    apply_event(dataset, "ANNOTATIONS_DELETED", {"annotations": [{"id": 30}]}, row)
    apply_event(dataset, "ANNOTATION_DELETED", {"task": {"id": 1}}, row)
    apply_event(dataset, "PROJECT_UPDATED", {"task": {"id": 9}}, row)
    assert dataset == {}


def test_updated_training_set(settings, text_config):
    model = build_model(LabelStudioMLBase, "1", text_config, BuildContext(settings, MemoryState()))
    previous = {"1": {"text": "t1", "label": "A", "annotation": 10}}
    # Annotation events fold into the previous set, coalesced ones first; `previous` is not modified.
    out = updated_training_set(
        model,
        previous,
        "ANNOTATION_CREATED",
        event(2, "B", 20),
        row,
        coalesced=[{"event": "ANNOTATION_UPDATED", "data": event(1, "C", 10)}],
    )
    assert {k: v["label"] for k, v in out.items()} == {"1": "C", "2": "B"}
    assert previous["1"]["label"] == "A"
    # START_TRAINING from the legacy /train list replaces the set.
    tasks = [{"id": 5, "data": {"text": "t5"}, "annotations": [{"id": 50, "result": [choice("A")]}]}]
    assert set(updated_training_set(model, previous, "START_TRAINING", {"annotations": tasks}, row)) == {"5"}
    # An empty set with an unreachable Label Studio learns from the event alone.
    offline = settings.replace(label_studio_url=f"http://127.0.0.1:{free_port()}", label_studio_api_key="k")
    model = build_model(LabelStudioMLBase, "1", text_config, BuildContext(offline, MemoryState()))
    assert set(updated_training_set(model, {}, "ANNOTATION_CREATED", event(7, "A", 70), row)) == {"7"}
