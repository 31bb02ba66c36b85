"""Issue 11 item 4: an untrained model sends no empty predictions.

Label Studio 1.23.2 stores every item of `/predict`'s `results` as a
prediction of that model version: an empty placeholder would be counted,
shown, sorted first by uncertainty and never asked for again. A task the
model cannot label gets `[]` (one item per task, so no one-by-one fallback),
and Label Studio stores nothing. The real Label Studio side is
tests/e2e/test_label_studio_protocol.py (Retrieve predictions stores nothing
while untrained, real predictions after the first training).
"""

import pytest

from lsml.response import task_predictions, without_empty_predictions
from lsml.store import LocalModelStore
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import ResponseModel

pytestmark = pytest.mark.unit

REAL = {"result": [{"from_name": "s", "to_name": "t", "type": "choices", "value": {"choices": ["A"]}}], "score": 0.4}


def test_empty_predictions_are_dropped_and_each_task_keeps_one_item():
    results = [{"result": [], "score": 0.0}, REAL, [{"result": []}, REAL], [], {"score": 0.3}]
    assert without_empty_predictions(results) == [[], REAL, [REAL], [], []]


def test_a_trained_models_empty_answer_is_kept():
    empty = [{"result": [], "score": 0.9}]
    assert task_predictions(empty, untrained=False) == empty
    assert task_predictions(empty, untrained=True) == [[]]


def test_predict_of_an_untrained_model_answers_no_prediction_then_a_trained_one_answers_its_own(
    serve, settings, text_config
):
    _, c = serve(ResponseModel)  # answers {"result": [], "score": 0.1} for every task
    tasks = [{"id": 1, "data": {"text": "a"}}, {"id": 2, "data": {"text": "b"}}]
    r = c.post("/predict", json={"tasks": tasks, "project": "1", "label_config": text_config})
    assert r.status_code == 200 and r.json["results"] == [[], []]
    assert r.json["model_version"] == "0.0.1"

    store = LocalModelStore(settings.model_dir)
    with store.staging("1") as out:
        (out / "fit.json").write_text("{}")
        store.publish("1", out)
    c.post("/setup", json={"project": "1", "schema": text_config})
    trained = wait_for(
        lambda: c.post("/predict", json={"tasks": tasks, "project": "1"}).json,
        10,
        0.02,
        what="the reload watcher to swap v1 in",
        until=lambda body: body["model_version"] == "v1",
    )
    assert trained["results"] == [{"result": [], "score": 0.1, "model_version": "v1"}] * 2
