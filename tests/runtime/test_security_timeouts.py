"""Issue 10 item 10: a hung predict or fit cannot take the server; a non-JSON 200 from Label Studio is an error."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from lsml.labelstudio import LabelStudioClient, LabelStudioError
from lsml.settings import Settings
from lsml.training.queue import TrainingRequest
from tests.fixtures.http_recorder import Answer
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import CountingModel


class HangingModel(CountingModel):
    """predict hangs on tasks that say so; fit hangs always, both until `release` is set."""

    release = threading.Event()

    def predict(self, tasks, context=None, **kwargs):
        if any(t.get("data", {}).get("hang") for t in tasks):
            type(self).release.wait(60)
        return super().predict(tasks, context)

    def fit(self, event, data, **kwargs):
        type(self).release.wait(60)
        (self.output_dir / "late.txt").write_text("trained after the deadline")
        return {"late": True}


@pytest.fixture
def hanging():
    HangingModel.release = threading.Event()
    yield HangingModel
    HangingModel.release.set()  # whatever the outcome, no thread stays blocked after the test


def post_all(client, bodies, timeout=10.0):
    """POST /predict bodies concurrently; a call that does not answer in `timeout` fails the test."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(client.post, "/predict", json=b) for b in bodies]
        try:
            return [f.result(timeout=timeout) for f in futures]
        except TimeoutError:
            HangingModel.release.set()
            pytest.fail(f"a /predict did not answer within {timeout}s: predict has no deadline")


def predict_body(text_config, hang=False):
    return {"tasks": [{"id": 1, "data": {"text": "x", "hang": hang}}], "project": "1", "label_config": text_config}


def test_a_hung_predict_answers_504_and_frees_its_slot(serve, hanging, text_config):
    _, client = serve(hanging, predict_concurrency=2, predict_timeout=1.0, predict_wait_timeout=0.2)
    started = time.monotonic()
    [hung] = post_all(client, [predict_body(text_config, hang=True)])
    assert hung.status_code == 504 and hung.get_json()["error"] == "predict_timeout"
    assert "LSML_PREDICT_TIMEOUT" in hung.get_json()["message"]
    assert time.monotonic() - started < 5
    [ok] = post_all(client, [predict_body(text_config)])  # the hung call's slot was given back
    assert ok.status_code == 200 and ok.get_json()["results"]
    assert client.get("/healthz").status_code == 200


def test_stuck_predictions_are_bounded_and_the_server_recovers(serve, hanging, text_config):
    app, client = serve(hanging, predict_concurrency=2, predict_timeout=1.0, predict_wait_timeout=0.2)
    answers = post_all(client, [predict_body(text_config, hang=True)] * 2)
    assert [a.status_code for a in answers] == [504, 504]
    # as many stuck threads as slots: refuse at once, and tell the liveness probe
    refused = post_all(client, [predict_body(text_config)])[0]
    assert refused.status_code == 503 and refused.get_json()["error"] == "predict_stuck"
    assert refused.headers["Retry-After"]
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json() == {"status": "stuck", "stuck_predictions": 2}
    assert "lsml_predict_stuck_threads 2.0" in client.get("/metrics").get_data(as_text=True)
    hanging.release.set()  # the stuck calls finally return: nothing stays counted
    wait_for(
        lambda: app.extensions["lsml"].predict_gate.stuck,
        10,
        0.02,
        what="no predict counted stuck",
        until=lambda stuck: not stuck,
    )
    assert client.get("/healthz").status_code == 200
    assert post_all(client, [predict_body(text_config)])[0].status_code == 200


def test_predict_timeout_setting(tmp_path):
    assert Settings.from_env(env={}, backend_dir=tmp_path).predict_timeout == 100.0
    assert Settings.from_env(env={"LSML_PREDICT_TIMEOUT": "2.5"}, backend_dir=tmp_path).predict_timeout == 2.5
    with pytest.raises(ValueError, match="LSML_PREDICT_TIMEOUT"):
        Settings.from_env(env={"LSML_PREDICT_TIMEOUT": "0"}, backend_dir=tmp_path)
    assert Settings.from_env(env={"LSML_FIT_TIMEOUT": "60"}, backend_dir=tmp_path).fit_timeout == 60.0


def test_an_embedded_fit_past_its_deadline_fails_and_never_publishes(serve, hanging, text_config):
    app, client = serve(hanging, fit_timeout=1.0)
    queue = app.extensions["lsml"].queue
    job = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": text_config}}
    ).get_json()["job"]
    try:
        status = queue.wait(job, timeout=10)
    except TimeoutError:
        hanging.release.set()
        pytest.fail("the embedded fit has no deadline")
    assert status["status"] == "failed" and "LSML_FIT_TIMEOUT" in status["error"]
    # the runner goes on: another project trains meanwhile (its fit hangs too, and times out too)
    other = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 2, "label_config": text_config}}
    ).get_json()["job"]
    assert queue.wait(other, timeout=10)["status"] == "failed"
    store = app.extensions["lsml"].registry.store
    staging = lambda: [*store.root.glob("*/.staging-*")]  # noqa: E731 - each abandoned fit's, until it returns
    assert len(staging()) == 2, "both abandoned fits still run"
    hanging.release.set()  # the abandoned fits now return and try to publish
    # a fit leaves its staging directory after its publish attempt: gone means both have tried
    wait_for(lambda: not staging(), 10, what="the abandoned fits to return")
    assert store.current("1") is None and store.current("2") is None


@pytest.mark.redis
def test_rq_jobs_get_the_same_fit_timeout(redis_url):
    from lsml.training.rq_queue import RQQueue

    queue = RQQueue("model:Counter", Settings.from_env(env={"LSML_FIT_TIMEOUT": "123"}).replace(redis_url=redis_url))
    job_id = queue.submit(TrainingRequest(project="timeout-1", event="START_TRAINING", payload={}))
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    assert job.timeout == 123


def test_a_non_json_200_from_label_studio_is_a_clear_error(http_recorder):
    proxy = http_recorder()  # a login page or proxy answering HTML with 200 where Label Studio's API should be
    proxy.routes["/api/tasks/"] = Answer(
        200, b"<html><body>Please sign in</body></html>", {"Content-Type": "text/html; charset=utf-8"}
    )
    client = LabelStudioClient(proxy.url, "secret-token-value")
    with pytest.raises(LabelStudioError) as caught:
        list(client.iter_tasks(3))
    message = str(caught.value)
    assert f"{proxy.url}/api/tasks/" in message and "text/html" in message
    assert "secret-token-value" not in message and "project=3" not in message
    proxy.routes["/api/tasks/"] = Answer(200, b'{"detail": "nope"}', {"Content-Type": "application/json"})
    with pytest.raises(LabelStudioError, match="without a 'tasks' list"):
        list(client.iter_tasks(3))
