"""The whole loop through a real Label Studio 1.23.2 and a backend under real gunicorn.

Everything happens the way a person's clicks make it happen: Label Studio's
own "Retrieve predictions" action, annotations submitted through its API
(which fires its webhooks), its Start Training button. Nothing talks to the
backend directly except to read which model versions it published.
"""

from __future__ import annotations

import pytest
import requests

from lsml.evaluation.split import is_held_out
from lsml.labelstudio.webhooks import basic_auth_header
from lsml.settings import Settings
from tests.fixtures.label_studio import SENTIMENT_TEXTS, sentiment_choice
from tests.fixtures.polling import wait_for
from tests.fixtures.training_metrics import training_idle

pytestmark = pytest.mark.labelstudio

TEXTS = SENTIMENT_TEXTS


def _backend_versions(backend, project: int, auth=None) -> dict:
    response = requests.get(f"{backend.url}/versions", params={"project": str(project)}, auth=auth, timeout=10)
    response.raise_for_status()
    return response.json()


def _predictions_by_task(ls_client, project: int) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for prediction in ls_client.predictions(project=project):
        grouped.setdefault(prediction["task"], []).append(prediction)
    return grouped


def test_predict_annotate_train_and_predict_again(ls_client, ls_project, start_ml_backend):
    backend = start_ml_backend("text_classifier")
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"data": {"text": text}} for text in TEXTS])
    tasks = {t["data"]["text"]: t["id"] for t in ls_client.iter_tasks(project)}
    assert set(tasks) == set(TEXTS)

    # Connect: Label Studio health-checks and sets up the backend, then shows it Connected.
    registered, created = ls_client.ensure_ml_backend(project, backend.url, title="text classifier")
    assert created
    connected = ls_client.ml_backend(registered["id"])
    assert connected["readable_state"] == "Connected"
    untrained_version = connected["model_version"]
    assert untrained_version  # from /setup's answer

    # Retrieve predictions while untrained: the backend has no prediction to give, so Label Studio stores
    # nothing (no empty prediction counted, shown or sorted first) and asks again after training.
    ls_client.run_action(project, "retrieve_tasks_predictions")
    assert _predictions_by_task(ls_client, project) == {}
    ls_client.task(tasks["an excellent and lovely story"])  # opening a task asks for one too: still nothing
    assert _predictions_by_task(ls_client, project) == {}

    # A person labels six tasks; each annotation fires a webhook to the backend.
    for text, label in TEXTS.items():
        if label:
            created_annotation = ls_client.create_annotation(tasks[text], sentiment_choice(label))
            assert created_annotation["result"][0]["value"]["choices"] == [label]

    # Start Training: START_TRAINING reaches /webhook; the backend fetches every annotated task itself.
    ls_client.train(registered["id"])

    def trained_on_start_training():
        versions = _backend_versions(backend, project)
        started = [v for v in versions["details"] if (v.get("metadata") or {}).get("event") == "START_TRAINING"]
        if not started:
            return None
        current = max(versions["details"], key=lambda v: v["number"])
        return current["name"] if current["number"] >= started[-1]["number"] else None

    newest = wait_for(trained_on_start_training, 120, 1, "a version trained by START_TRAINING")
    assert newest != untrained_version

    # Label Studio learns the new version from /setup on its next look at the backend.
    wait_for(
        lambda: ls_client.ml_backend(registered["id"])["model_version"],
        60,
        1,
        f"Label Studio to show model_version {newest}",
        until=lambda shown: shown == newest,
    )

    # Retrieve again: now each task gets exactly one prediction, of the trained version, with a real label.
    ls_client.run_action(project, "retrieve_tasks_predictions")
    again = _predictions_by_task(ls_client, project)
    for task_id in tasks.values():
        fresh = [p for p in again[task_id] if p["model_version"] == newest]
        assert len(fresh) == 1 and len(again[task_id]) == 1, again[task_id]
        result = fresh[0]["result"]
        assert result and result[0]["value"]["choices"][0] in ("Positive", "Negative")
        assert 0.0 < fresh[0]["score"] <= 1.0
    # The model learnt something: the annotated examples it trained on come back with their own labels (a
    # held-out one, LSML_HOLDOUT_FRACTION's default 0.2, scores the version and was never trained on).
    for text, label in TEXTS.items():
        if label and not is_held_out(str(project), tasks[text], Settings.from_env(env={}).holdout_fraction):
            (fresh,) = [p for p in again[tasks[text]] if p["model_version"] == newest]
            assert fresh["result"][0]["value"]["choices"] == [label]


def test_basic_auth_backend_gets_predictions_and_webhooks(ls_client, ls_project, start_ml_backend):
    user, password = "label-studio", "pa55-word"
    backend = start_ml_backend("text_classifier", env={"BASIC_AUTH_USER": user, "BASIC_AUTH_PASS": password})
    assert requests.get(f"{backend.url}/health", timeout=5).status_code == 401  # really protected
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"data": {"text": text}} for text in TEXTS])
    tasks = {t["data"]["text"]: t["id"] for t in ls_client.iter_tasks(project)}

    registered, _ = ls_client.ensure_ml_backend(project, backend.url, basic_auth=(user, password))
    assert ls_client.ml_backend(registered["id"])["readable_state"] == "Connected"
    webhook = ls_client.backend_webhook(project, backend.url)
    assert webhook["headers"]["Authorization"] == basic_auth_header(user, password)

    # Predictions go through Label Studio's basic-auth connection (untrained: none stored, see the end).
    ls_client.run_action(project, "retrieve_tasks_predictions")
    assert _predictions_by_task(ls_client, project) == {}

    # Annotations alone (no Start Training) reach the backend only if the webhook authenticates.
    for text, label in list(TEXTS.items())[:6]:
        ls_client.create_annotation(tasks[text], sentiment_choice(label))

    def annotation_trained():
        versions = _backend_versions(backend, project, auth=(user, password))
        return [v for v in versions["details"] if (v.get("metadata") or {}).get("event", "").startswith("ANNOTATION")]

    assert wait_for(annotation_trained, 120, 1, "a version trained from annotation webhooks")
    # Each webhook queued a training (Label Studio without Redis sends it inside create_annotation), and each
    # fit publishes, the ones that saw a single label too (no prediction then): the version to expect is the
    # one left when every queued training has ended, trained on all six.
    wait_for(lambda: training_idle(backend.url, (user, password)), 120, 1, "every queued training to end")
    current = _backend_versions(backend, project, auth=(user, password))["model_version"]
    wait_for(
        lambda: ls_client.ml_backend(registered["id"])["model_version"],
        60,
        1,
        f"Label Studio to show the backend's current version {current}",
        until=lambda shown: shown == current,
    )

    # Trained: Retrieve predictions through the basic-auth connection stores one real prediction per task.
    ls_client.run_action(project, "retrieve_tasks_predictions")
    stored = _predictions_by_task(ls_client, project)
    assert set(stored) == set(tasks.values())
    for predictions in stored.values():
        (fresh,) = [p for p in predictions if p["model_version"] == current]
        assert fresh["result"], predictions
