"""examples/text_classifier: trains from annotation events and from START_TRAINING (API fetch), per project."""

from pathlib import Path

import pytest

from lsml.model import BuildContext, build_model
from lsml.state import MemoryState
from lsml.training import TrainingRequest, run_training

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text_classifier"
POSITIVE = ["great movie", "good fun", "nice and lovely", "wonderful acting", "great great"]
NEGATIVE = ["bad movie", "awful plot", "terrible acting", "boring and bad", "awful awful"]


@pytest.fixture
def example_settings(settings):
    return settings.replace(backend_dir=EXAMPLE)


def annotation_event(task_id, text, label, event="ANNOTATION_CREATED", from_name="sentiment"):
    return {
        "project": {"id": 1},
        "task": {"id": task_id, "data": {"text": text}},
        "annotation": {
            "id": 100 + task_id,
            "result": [{"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        },
    }


def labelled():
    rows = [(t, "Positive") for t in POSITIVE] + [(t, "Negative") for t in NEGATIVE]
    return [(i, text, label) for i, (text, label) in enumerate(rows)]


def model_on_current(settings, text_config, project="1"):
    from lsml.model import load_model_class
    from lsml.store import LocalModelStore

    cls = load_model_class("model:TextClassifier", EXAMPLE)
    version = LocalModelStore(settings.model_dir).current(project)
    return build_model(cls, project, text_config, BuildContext(settings, MemoryState(), version))


def test_untrained_model_returns_no_prediction_per_task(example_settings, text_config):
    m = model_on_current(example_settings, text_config)
    assert m.predict([{"data": {"text": "x"}}, {"data": {"text": "y"}}]) == [[], []]


def test_trains_from_annotation_events_and_predicts_choices(example_settings, text_config):
    for task_id, text, label in labelled():
        run_training(
            "model:TextClassifier",
            TrainingRequest("1", "ANNOTATION_CREATED", annotation_event(task_id, text, label), text_config),
            example_settings,
        )
    m = model_on_current(example_settings, text_config)
    assert m.model_version == "v10"
    out = m.predict([{"data": {"text": "great and lovely"}}, {"data": {"text": "awful and boring"}}])
    assert [p["result"][0]["value"]["choices"][0] for p in out] == ["Positive", "Negative"]
    assert all(0.5 < p["score"] <= 1.0 for p in out)
    assert out[0]["result"][0]["from_name"] == "sentiment" and out[0]["result"][0]["to_name"] == "text"


def test_coalesced_events_are_all_learned(example_settings, text_config):
    rows = labelled()
    first, rest = rows[0], rows[1:]
    coalesced = [{"event": "ANNOTATION_CREATED", "data": annotation_event(i, t, l)} for i, t, l in rest[:-1]]
    last = rest[-1]
    req = TrainingRequest("1", "ANNOTATION_CREATED", annotation_event(*last), text_config, coalesced=coalesced)
    run_training(
        "model:TextClassifier",
        TrainingRequest("1", "ANNOTATION_CREATED", annotation_event(*first), text_config),
        example_settings,
    )
    out = run_training("model:TextClassifier", req, example_settings)
    assert out["result"]["examples"] == len(rows) and out["result"]["trained"]


def test_deleted_annotations_leave_the_training_set(example_settings, text_config):
    for task_id, text, label in labelled()[:6]:
        run_training(
            "model:TextClassifier",
            TrainingRequest("1", "ANNOTATION_CREATED", annotation_event(task_id, text, label), text_config),
            example_settings,
        )
    out = run_training(
        "model:TextClassifier",
        TrainingRequest("1", "ANNOTATIONS_DELETED", {"project": {"id": 1}, "annotations": [{"id": 105}]}, text_config),
        example_settings,
    )
    assert out["result"]["examples"] == 5 and out["result"]["labels"] == ["Positive"]


@pytest.mark.labelstudio
def test_start_training_fetches_annotated_tasks_from_label_studio(
    example_settings, text_config, label_studio, ls_project, ls_client
):
    """START_TRAINING carries only the project: the model reads every annotated task from a real Label Studio."""
    project = ls_project()  # Choices "sentiment" over Text "text", like text_config
    tasks = [
        {
            "data": {"text": t},
            "annotations": [
                {
                    "result": [
                        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [l]}}
                    ]
                }
            ],
        }
        for _, t, l in labelled()
    ]
    tasks.append({"data": {"text": "skipped"}, "annotations": [{"was_cancelled": True, "result": []}]})
    tasks.append({"data": {"text": "not labelled yet"}})
    ls_client.import_tasks(project["id"], tasks)
    s = example_settings.replace(label_studio_url=label_studio.url, label_studio_api_key=label_studio.legacy_token)
    out = run_training(
        "model:TextClassifier",
        TrainingRequest(str(project["id"]), "START_TRAINING", {"project": {"id": project["id"]}}, text_config),
        s,
    )
    assert out["model_version"] == "v1" and out["result"] == {
        "examples": 10,
        "labels": ["Negative", "Positive"],
        "trained": True,
    }
    m = model_on_current(example_settings, text_config, str(project["id"]))
    assert m.predict([{"data": {"text": "wonderful and great"}}])[0]["result"][0]["value"]["choices"] == ["Positive"]


def test_projects_with_different_labels_get_different_models(example_settings, text_config):
    other = text_config.replace("Positive", "Spam").replace("Negative", "Ham")
    for task_id, text, label in labelled():
        run_training(
            "model:TextClassifier",
            TrainingRequest("1", "ANNOTATION_CREATED", annotation_event(task_id, text, label), text_config),
            example_settings,
        )
    m2 = model_on_current(example_settings, other, project="2")
    assert m2.predict([{"data": {"text": "great"}}]) == [[]]  # one label seen: a version, but no prediction
    run_training(
        "model:TextClassifier",
        TrainingRequest("2", "ANNOTATION_CREATED", annotation_event(1, "buy now cheap", "Spam"), other),
        example_settings,
    )
    run_training(
        "model:TextClassifier",
        TrainingRequest("2", "ANNOTATION_CREATED", annotation_event(2, "meeting at noon", "Ham"), other),
        example_settings,
    )
    m2 = model_on_current(example_settings, other, project="2")
    label = m2.predict([{"data": {"text": "cheap cheap buy"}}])[0]["result"][0]["value"]["choices"][0]
    assert label in ("Spam", "Ham") and m2.model_version == "v2"
