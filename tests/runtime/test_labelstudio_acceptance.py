"""Acceptance against a real Label Studio 1.23.2: annotations made from predictions, through Label Studio's
API with `parent_prediction` set as its UI sets it, are counted per model version in /versions and /metrics.

The predictions are stored in Label Studio directly (two model versions), so the test knows exactly what
each annotator started from; the backend learns of the annotations only through Label Studio's webhooks,
and fetches each parent prediction with its own credential on the training side."""

from __future__ import annotations

import re

import pytest
import requests

from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import start_server

pytestmark = [pytest.mark.labelstudio]

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
  <Labels name="ner" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
  </Labels>
</View>"""

MODEL_PY = """
from lsml import LabelStudioMLBase


class Quiet(LabelStudioMLBase):
    def predict(self, tasks, context=None, **kwargs):
        return [[] for _ in tasks]

    def fit(self, event, data, **kwargs):
        (self.output_dir / "fitted").write_text(event)


class OnStart(Quiet):
    # publishes a version on START_TRAINING only: which version was served when an annotation was made is
    # then what the test says, not a race with the trainings each annotation starts

    def fit(self, event, data, **kwargs):
        if event != "START_TRAINING":
            return False
        return super().fit(event, data, **kwargs)
"""

TEXT = "Ada Lovelace met IBM"


def span(rid: str, start: int, end: int, label: str) -> dict:
    value = {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}
    return {"id": rid, "from_name": "ner", "to_name": "text", "type": "labels", "value": value}


def sentiment(label: str) -> dict:
    return {"id": "s", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}


PREDICTED = [sentiment("Positive"), span("p1", 0, 12, "PER"), span("p2", 17, 20, "ORG")]


def metric(url: str, name: str, **labels: str) -> float | None:
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


@pytest.mark.parametrize("stack", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def test_annotations_made_from_predictions_are_counted_per_version(
    stack, request, tmp_path, procs, label_studio, ls_client, ls_project
):
    """Embedded: the server's training thread counts into sqlite; Redis: the RQ worker counts into Redis."""
    redis_url = request.getfixturevalue("private_redis").url if stack == "redis" else None
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / "model.py").write_text(MODEL_PY)
    (backend / "_wsgi.py").write_text("from lsml.server import create_app\n\napp = create_app('model:Quiet')\n")
    project = ls_project(CONFIG)["id"]
    ls_client.import_tasks(project, [{"text": TEXT} for _ in range(6)])
    tasks = sorted(t["id"] for t in ls_client.tasks(project))
    ls_client.import_predictions(
        project,
        [{"task": t, "result": PREDICTED, "model_version": "v1"} for t in tasks[:4]]
        + [{"task": tasks[5], "result": PREDICTED, "model_version": "v2"}],
    )
    parent = {p["task"]: p["id"] for p in ls_client.predictions(project=project)}
    env = {
        "LSML_MODEL": "model:Quiet",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "LSML_CATCHUP_INTERVAL": "0",
        # two gunicorn workers merging their metrics, as `label-studio-ml start` runs them: either answers
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    (tmp_path / "prometheus").mkdir()
    if redis_url:
        procs.worker(backend, redis_url, **env)
    url = start_server(procs, backend, redis_url, workers=2, **env)
    ls_client.ensure_ml_backend(project, url, title="acceptance test")

    def annotate(task: int, result: list[dict]) -> dict:
        # what Label Studio's editor sends when the annotator submits a task opened with a prediction
        return ls_client.create_annotation(task, result, parent_prediction=parent[task], lead_time=3.0)

    annotate(tasks[0], PREDICTED)  # accepted as is: 3 kept
    annotate(tasks[1], [sentiment("Negative"), span("p1", 0, 12, "ORG"), PREDICTED[2]])  # 2 changed, 1 kept
    rejected = annotate(tasks[2], [])  # every region deleted: 3 deleted
    annotate(tasks[3], [*PREDICTED, span("n1", 4, 12, "PER")])  # 3 kept, 1 added
    v2 = annotate(tasks[5], [sentiment("Positive")])  # v2: 1 kept, 2 deleted
    # no parent, and the task has no prediction: drawn from scratch, not counted
    ls_client.create_annotation(tasks[4], [sentiment("Negative")])

    def report() -> dict:
        return requests.get(url + "/versions", params={"project": project}, timeout=5).json()["acceptance"]

    found = wait_for(
        report,
        60,
        what="the acceptance counts of five annotations",
        until=lambda r: r.get("v1", {}).get("annotations") == 4 and r.get("v2", {}).get("annotations") == 1,
        diagnose=lambda: procs.log("server")[-3000:],
    )
    assert found["v1"] == {
        "annotations": 4,
        "predicted": 12,
        "kept": 7,
        "changed": 2,
        "deleted": 3,
        "added": 1,
        "accepted_share": round(7 / 12, 4),
    }
    assert found["v2"] == {
        "annotations": 1,
        "predicted": 3,
        "kept": 1,
        "changed": 0,
        "deleted": 2,
        "added": 0,
        "accepted_share": round(1 / 3, 4),
    }
    for outcome, count in {"kept": 7, "changed": 2, "deleted": 3, "added": 1}.items():
        assert (
            metric(url, "lsml_prediction_regions", project=str(project), model_version="v1", outcome=outcome) == count
        )
    assert metric(url, "lsml_prediction_annotations", project=str(project), model_version="v2") == 1

    # the annotator of the rejected task comes back and accepts the prediction after all: it replaces, not adds
    ls_client.patch_json(f"/api/annotations/{rejected['id']}/", {"result": PREDICTED})
    found = wait_for(
        report,
        60,
        what="the update's counts",
        until=lambda r: r["v1"]["deleted"] == 0,
        diagnose=lambda: procs.log("server")[-3000:],
    )
    assert found["v1"]["annotations"] == 4 and found["v1"]["kept"] == 10 and found["v1"]["accepted_share"] == 0.8333

    # a deleted annotation (Label Studio sends ANNOTATIONS_DELETED) no longer counts
    ls_client.delete(f"/api/annotations/{v2['id']}/")
    found = wait_for(report, 60, what="the deletion's withdrawal", until=lambda r: "v2" not in r)
    assert found["v1"]["annotations"] == 4
    assert metric(url, "lsml_prediction_annotations", project=str(project), model_version="v2") is None


def test_annotations_without_a_parent_are_compared_with_the_prediction_of_the_version_served_then(
    tmp_path, procs, label_studio, ls_client, ls_project
):
    """Label Studio's API saves an annotation without `parent_prediction` unless the client sends it: the
    task's prediction of the version the backend served at the annotation's creation is compared instead."""
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / "model.py").write_text(MODEL_PY)
    (backend / "_wsgi.py").write_text("from lsml.server import create_app\n\napp = create_app('model:OnStart')\n")
    project = ls_project(CONFIG)["id"]
    ls_client.import_tasks(project, [{"text": TEXT} for _ in range(4)])
    tasks = sorted(t["id"] for t in ls_client.tasks(project))
    env = {
        "LSML_MODEL": "model:OnStart",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "LSML_CATCHUP_INTERVAL": "0",
    }
    url = start_server(procs, backend, None, **env)
    ml, _ = ls_client.ensure_ml_backend(project, url, title="acceptance fallback test")
    ls_client.train(ml["id"])  # Label Studio sends START_TRAINING: v1 is published and served from now on

    def versions() -> dict:
        return requests.get(url + "/versions", params={"project": project}, timeout=5).json()

    wait_for(versions, 60, what="v1 published", until=lambda r: r.get("current") == "v1")
    ls_client.import_predictions(
        project,
        [{"task": t, "result": PREDICTED, "model_version": "v1"} for t in tasks[:3]]
        + [{"task": tasks[3], "result": PREDICTED, "model_version": "an-older-model"}],
    )
    ls_client.create_annotation(tasks[0], PREDICTED, lead_time=2.0)  # accepted as is: 3 kept
    ls_client.create_annotation(tasks[1], [sentiment("Negative")], lead_time=2.0)  # 1 changed, 2 deleted
    ls_client.create_annotation(tasks[2], [], lead_time=2.0, was_cancelled=True)  # skipped: counts nothing
    ls_client.create_annotation(tasks[3], [sentiment("Positive")], lead_time=2.0)  # not v1's prediction: no

    found = wait_for(
        lambda: versions()["acceptance"],
        60,
        what="the acceptance counts of two annotations without a parent",
        until=lambda r: r.get("v1", {}).get("annotations") == 2,
        diagnose=lambda: procs.log("server")[-3000:],
    )
    assert found == {
        "v1": {
            "annotations": 2,
            "predicted": 6,
            "kept": 3,
            "changed": 1,
            "deleted": 2,
            "added": 0,
            "accepted_share": 0.5,
        }
    }
