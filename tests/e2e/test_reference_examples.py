"""Reference SDK examples, unmodified, served by `label-studio-ml start DIR` and driven by a real Label Studio 1.23.2.

The examples are HumanSignal/label-studio-ml-backend's own files (tests/vendor): their `_wsgi.py` (no
MODEL constant, `init_app(model_class=...)`, logging configured at import), their `model.py`
(label_studio_ml and label_studio_sdk imports). Everything else happens the way a person's clicks make
it happen: connecting the backend through Label Studio's API, Label Studio's own interactive-annotating
call and "Retrieve predictions" action, annotations submitted through its API (which fire its webhooks).
"""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.label_studio import SENTIMENT_TEXTS, sentiment_choice
from tests.fixtures.polling import wait_for
from tests.fixtures.reference_sdk import APPLE, APPLE_SELECTION, EVERY_APPLE, NER_CONFIG, reference_example, spans
from tests.fixtures.training_metrics import training_idle

pytestmark = pytest.mark.labelstudio


def test_interactive_pre_annotation_through_label_studio(ls_client, ls_project, start_ml_backend):
    """interactive_substring_matching: a person selects one "Apple"; Label Studio's interactive-annotating
    call returns every occurrence, labelled like the selection."""
    backend = start_ml_backend(source=reference_example("interactive_substring_matching"))
    project = ls_project(NER_CONFIG)["id"]
    ls_client.import_tasks(project, [{"data": {"text": APPLE}}])
    (task,) = ls_client.tasks(project)

    registered, created = ls_client.ensure_ml_backend(
        project, backend.url, title="interactive substring matching", is_interactive=True
    )
    assert created and registered["is_interactive"]
    connected = ls_client.ml_backend(registered["id"])
    assert connected["readable_state"] == "Connected", connected

    answer = ls_client.post_json(
        f"/api/ml/{registered['id']}/interactive-annotating",
        {"task": task["id"], "context": {"result": [APPLE_SELECTION]}},
        timeout=60,
    )
    assert "errors" not in answer, answer
    assert spans(answer["data"]) == EVERY_APPLE
    assert answer["data"]["model_version"] == "InteractiveSubstringMatching-v0.0.1"  # the model's own name


def test_predictions_stored_and_fit_from_annotation_webhooks(label_studio, ls_client, ls_project, start_ml_backend):
    """sklearn_text_classifier: Retrieve predictions stores one per task; six annotations reach /webhook,
    the example's `fit` reads the labelled tasks back from Label Studio with its own label_studio_sdk
    client (LABEL_STUDIO_HOST / LABEL_STUDIO_API_KEY, its variables) and trains; Label Studio then
    shows the new version and stores predictions of the trained model."""
    labelled = {text: label for text, label in SENTIMENT_TEXTS.items() if label}
    backend = start_ml_backend(
        source=reference_example("sklearn_text_classifier"),
        env={
            "LABEL_STUDIO_HOST": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
            "START_TRAINING_EACH_N_UPDATES": str(len(labelled)),  # the example trains when that many are labelled
        },
    )
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"data": {"text": text}} for text in SENTIMENT_TEXTS])
    tasks = {t["data"]["text"]: t["id"] for t in ls_client.iter_tasks(project)}

    registered, _ = ls_client.ensure_ml_backend(project, backend.url, title="sklearn text classifier")
    connected = ls_client.ml_backend(registered["id"])
    assert connected["readable_state"] == "Connected", connected

    # Untrained, the example still answers (a pipeline fitted on the label names): one prediction per task.
    ls_client.run_action(project, "retrieve_tasks_predictions")
    first = ls_client.predictions(project=project)
    assert sorted(p["task"] for p in first) == sorted(tasks.values()), first
    assert all(p["result"][0]["value"]["choices"][0] in ("Positive", "Negative") for p in first)

    for text, label in labelled.items():
        ls_client.create_annotation(tasks[text], sentiment_choice(label))
    trained_file = backend.model_dir / "model.pkl"  # where the example saves its pipeline: MODEL_DIR
    wait_for(trained_file.exists, 120, 0.5, f"the example's fit to save {trained_file}")
    # Every fit publishes a version, the example's skipped ones too, and a job that began after the sixth
    # annotation trains again: the version to expect is the one left when every queued training has ended.
    wait_for(lambda: training_idle(backend.url), 120, 0.5, "every queued training to end")

    def shown_current_and_trained() -> tuple[str, str, bool]:
        versions = requests.get(f"{backend.url}/versions", params={"project": str(project)}, timeout=10).json()
        current = next(v for v in versions["details"] if v["name"] == versions["model_version"])
        return (
            ls_client.ml_backend(registered["id"])["model_version"],
            current["name"],
            current["created_at"] >= trained_file.stat().st_mtime,  # published by the fit that trained
        )

    shown, _, _ = wait_for(
        shown_current_and_trained,
        120,
        1,
        "Label Studio to show (first) the backend's current version (second), published after the training",
        until=lambda seen: seen[0] == seen[1] and seen[2],
    )

    ls_client.run_action(project, "retrieve_tasks_predictions")
    fresh = {p["task"]: p for p in ls_client.predictions(project=project) if p["model_version"] == shown}
    assert set(fresh) == set(tasks.values()), fresh
    for text, label in labelled.items():  # the trained model gives the labelled examples their own labels
        assert fresh[tasks[text]]["result"][0]["value"]["choices"] == [label], (text, fresh[tasks[text]])
