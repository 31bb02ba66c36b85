"""Every Label Studio-facing endpoint, through Flask's test client."""

import threading
import time

import pytest

from lsml.server.routes import client_payload
from tests.fixtures.polling import wait_for
from tests.fixtures.sample_models import (
    BadReturnModel,
    BrokenPredictModel,
    BrokenSetupModel,
    CountingModel,
    ResponseModel,
    SlowPredictModel,
    SlowSetupModel,
)

TASKS = [{"id": i, "data": {"text": f"t{i}"}} for i in range(3)]


def setup_project(client, config, project="1.1700000000", **extra):
    r = client.post("/setup", json={"project": project, "schema": config, **extra})
    assert r.status_code == 200, r.json
    return r.json


def test_health_and_index_name_the_model_class(serve):
    _, c = serve(CountingModel)
    for path in ("/", "/health"):
        r = c.get(path)  # the reference SDK's body to the key: its own tests compare it whole
        assert r.status_code == 200 and r.json == {"status": "UP", "model_class": "CountingModel"}
        r = c.get(path + "?details=true")
        assert r.status_code == 200 and r.json == {
            "status": "UP",
            "model_class": "CountingModel",
            "catchup": {"status": "off", "reason": r.json["catchup"]["reason"], "interval": 60.0},
        }
        assert "LABEL_STUDIO_URL" in r.json["catchup"]["reason"]  # no credentials: catch-up cannot run


def test_setup_answers_the_model_version_and_predict_answers_one_item_per_task(serve, text_config):
    _, c = serve(CountingModel)
    assert setup_project(c, text_config) == {"model_version": "0.0.1"}
    r = c.post(
        "/predict",
        json={
            "tasks": TASKS,
            "project": "1.1700000000",
            "label_config": text_config,
            "params": {"login": None, "password": None, "context": None},
        },
    )
    assert r.status_code == 200
    results = r.json["results"]
    assert len(results) == 3
    for item in results:
        assert item["score"] == 0.75 and item["model_version"] == "0.0.1"
        assert item["result"][0]["value"] == {"choices": ["Positive"]}


def test_predict_accepts_model_response_objects(serve, text_config):
    _, c = serve(ResponseModel)
    setup_project(c, text_config)
    r = c.post("/predict", json={"tasks": TASKS[:2], "project": "1"})
    assert r.json["results"] == [[], []]  # untrained and empty: no prediction (test_no_empty_predictions.py)


def test_predict_with_label_config_needs_no_setup(serve, text_config):
    _, c = serve(CountingModel)
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "4.1", "label_config": text_config})
    assert r.status_code == 200 and len(r.json["results"]) == 1


def test_empty_task_list_gives_empty_results(serve, text_config):
    _, c = serve(CountingModel)
    setup_project(c, text_config)
    assert c.post("/predict", json={"tasks": [], "project": "1"}).json["results"] == []


def test_model_is_built_once_and_reused(serve, text_config):
    _, c = serve(CountingModel)
    setup_project(c, text_config)
    for _ in range(5):
        assert c.post("/predict", json={"tasks": TASKS[:1], "project": "1"}).status_code == 200
    setup_project(c, text_config)
    assert CountingModel.built == 1


def test_projects_get_their_own_instances_and_labels(serve, text_config):
    _, c = serve(CountingModel)
    other = text_config.replace("Positive", "Spam").replace("Negative", "Ham")
    setup_project(c, text_config, "1.1")
    setup_project(c, other, "2.1")
    a = c.post("/predict", json={"tasks": TASKS[:1], "project": "1.1"}).json["results"][0]
    b = c.post("/predict", json={"tasks": TASKS[:1], "project": "2.1"}).json["results"][0]
    assert a["result"][0]["value"]["choices"] == ["Positive"]
    assert b["result"][0]["value"]["choices"] == ["Spam"]


def test_a_changed_label_config_rebuilds_the_model(serve, text_config):
    _, c = serve(CountingModel)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    changed = text_config.replace("Positive", "Great")
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1", "label_config": changed})
    assert r.json["results"][0]["result"][0]["value"]["choices"] == ["Great"]


def test_setup_remembers_hostname_token_and_extra_params(serve, text_config):
    app, c = serve(CountingModel)
    setup_project(c, text_config, hostname="http://ls:8080", access_token="tok", extra_params={"k": 1})
    state = app.extensions["lsml"].registry.state
    # one value, so the token never goes to a host another /setup names (test_security_credentials.py)
    assert state.get("1", "label_studio") == {"hostname": "http://ls:8080", "access_token": "tok"}
    assert state.get("1", "extra_params") == {"k": 1}


def test_health_and_setup_answer_fast_while_a_slow_model_loads(serve, text_config):
    import threading

    app, c = serve(SlowSetupModel)
    SlowSetupModel.gate = threading.Event()  # the model loads until the test lets it end
    setup_project(c, text_config)  # each answered while the model is still loading
    assert c.get("/health").status_code == 200
    setup_project(c, text_config)
    # predict waits for the load instead of failing
    answers: list = []
    predicting = threading.Thread(
        target=lambda: answers.append(app.test_client().post("/predict", json={"tasks": TASKS[:1], "project": "1"}))
    )
    predicting.start()
    SlowSetupModel.gate.set()
    predicting.join(30)
    assert answers and answers[0].status_code == 200 and len(answers[0].json["results"]) == 1


def test_health_answers_fast_while_a_prediction_runs(serve, text_config):
    import threading

    app, c = serve(SlowPredictModel)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})  # warm
    SlowPredictModel.gate = threading.Event()  # the prediction runs until the test lets it end
    t = threading.Thread(target=lambda: app.test_client().post("/predict", json={"tasks": TASKS[:1], "project": "1"}))
    t.start()
    wait_for(lambda: SlowPredictModel.running == 1, 10, 0.02, what="the first predict to run")
    assert c.get("/health").status_code == 200
    setup_project(c, text_config)
    assert SlowPredictModel.running == 1, "answered while the prediction runs, not after it"
    SlowPredictModel.gate.set()
    t.join()


def test_predict_gives_503_when_the_model_is_still_loading_after_the_bound(serve, text_config):
    _, c = serve(SlowSetupModel, model_load_timeout=0.2)
    setup_project(c, text_config)
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.status_code == 503 and r.json["error"] == "model_loading"
    assert "LSML_MODEL_LOAD_TIMEOUT" in r.json["message"]


def test_predict_concurrency_is_bounded(serve, text_config):
    import threading

    app, c = serve(SlowPredictModel, predict_concurrency=2)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    SlowPredictModel.peak = 0
    SlowPredictModel.gate = threading.Event()  # predictions run until the test lets them end
    codes = []

    def call():
        codes.append(app.test_client().post("/predict", json={"tasks": TASKS[:1], "project": "1"}).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    [t.start() for t in threads]
    wait_for(lambda: SlowPredictModel.running == 2, 10, 0.02, what="two predictions to run at once")
    SlowPredictModel.gate.set()
    [t.join() for t in threads]
    assert codes == [200] * 6
    assert SlowPredictModel.peak == 2


def test_saturated_predict_waits_then_gets_503(serve, text_config):
    import threading

    app, c = serve(SlowPredictModel, predict_concurrency=1, predict_wait_timeout=0.05)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    SlowPredictModel.gate = threading.Event()  # the first prediction holds the only slot until the test is done
    t = threading.Thread(target=lambda: app.test_client().post("/predict", json={"tasks": TASKS[:1], "project": "1"}))
    t.start()
    wait_for(lambda: SlowPredictModel.running == 1, 10, 0.02, what="the first predict to run")
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    SlowPredictModel.gate.set()
    t.join()
    assert r.status_code == 503 and r.json["error"] == "busy"


def test_a_model_that_raises_gives_500_without_its_message(serve, text_config):
    _, c = serve(BrokenPredictModel)
    setup_project(c, text_config)
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.status_code == 500 and r.json["error"] == "model_error"
    assert "secret-token-abc" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert c.get("/health").status_code == 200


def test_a_model_returning_garbage_gives_500_naming_the_problem(serve, text_config):
    _, c = serve(BadReturnModel)
    setup_project(c, text_config)
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.status_code == 500 and r.json["error"] == "bad_prediction" and "list" in r.json["message"]


def test_a_model_whose_setup_raises_gives_503(serve, text_config):
    _, c = serve(BrokenSetupModel)
    setup_project(c, text_config)
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.status_code == 503 and r.json["error"] == "model_load_failed"
    assert "RuntimeError" in r.json["message"] and "weights" not in r.json["message"]


def test_webhook_queues_training_events_and_ignores_others(serve, text_config):
    app, c = serve(CountingModel)
    setup_project(c, text_config)
    r = c.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}})
    assert r.status_code == 200 and r.json["status"] == "ignored"
    r = c.post(
        "/webhook",
        json={
            "action": "ANNOTATION_CREATED",
            "project": {"id": 1, "label_config": text_config},
            "task": {"id": 1, "data": {"text": "x"}},
            "annotation": {"result": []},
        },
    )
    assert r.status_code == 201 and r.json["job"]
    status = app.extensions["lsml"].queue.wait(r.json["job"])
    assert status["status"] == "finished" and status["model_version"] == "v1"
    r = c.post("/job_status", json={"job": r.json["job"]})
    assert r.status_code == 200 and r.json["status"] == r.json["job_status"] == "finished"
    # the new version is served (hot reload) and reported by /setup
    wait_for(
        lambda: setup_project(c, text_config)["model_version"],
        10,
        0.02,
        what="/setup to report v1",
        until=lambda version: version == "v1",
    )
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.json["results"][0]["model_version"] == "v1"
    assert CountingModel.fit_calls[0][:2] == ("1", "ANNOTATION_CREATED")


@pytest.mark.parametrize("claim", [{"seen": 1}, {"seen": {"\u00b2": "x"}}, {"deleted": 5}])
def test_a_client_cannot_pass_itself_off_as_catch_up(serve, text_config, claim):
    """`catchup` in a training payload is lsml's own marker (what catch-up recovered, folded into the version's
    watermark). Sent by a client it was folded too: malformed, it raised after `fit` and the version was lost;
    well formed, it claimed annotations as trained on. The routes drop it."""
    app, c = serve(CountingModel)
    setup_project(c, text_config)
    queue = app.extensions["lsml"].queue
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": {"result": []}, "catchup": claim}
    for path, body in (("/webhook", event), ("/train", {"project": "1", "annotations": [{"id": 1}], "catchup": claim})):
        r = c.post(path, json=body)
        assert r.status_code == 201, r.json
        status = queue.wait(r.json["job"])
        assert status["status"] == "finished", (path, status)
    assert client_payload({"action": "A", "project": {"id": 1}, "catchup": {"seen": {"1": "x"}}}, "action") == {
        "project": {"id": 1}
    }


def test_start_training_event_trains_the_project(serve, text_config):
    app, c = serve(CountingModel)
    r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7, "label_config": text_config}})
    assert r.status_code == 201
    assert app.extensions["lsml"].queue.wait(r.json["job"])["model_version"] == "v1"
    assert c.get("/versions?project=7").json["versions"] == ["v1"]


def test_legacy_train_enqueues_and_returns_a_job(serve, text_config):
    app, c = serve(CountingModel)
    r = c.post("/train", json={"annotations": [{"id": 1}], "project": "3.1", "label_config": text_config})
    assert r.status_code == 201 and "job" in r.json
    assert app.extensions["lsml"].queue.wait(r.json["job"])["status"] == "finished"


def test_versions_lists_published_versions_from_query_or_body(serve, text_config):
    app, c = serve(CountingModel)
    assert c.get("/versions?project=1").json == {
        "project": "1",
        "versions": [],
        "details": [],
        "current": None,
        "pinned": None,
        "pinned_by": None,
        "latest": None,
        "metrics": [],
        "acceptance": {},
        "model_version": "0.0.1",
    }
    queue = app.extensions["lsml"].queue
    for _ in range(2):
        r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": text_config}})
        queue.wait(r.json["job"])
    body = c.open("/versions", method="GET", json={"project": "1.170"}).json
    assert body["versions"] == ["v1", "v2"] and body["model_version"] == "v2"
    assert c.post("/versions", json={"project": 1}).json["versions"] == ["v1", "v2"]


def test_job_status_of_an_unknown_job_is_404(serve):
    _, c = serve(CountingModel)
    r = c.post("/job_status", json={"job": "nope"})
    assert r.status_code == 404 and r.json["error"] == "unknown_job"


def test_probes(serve):
    _, c = serve(CountingModel)
    assert c.get("/healthz").json == {"status": "alive"}
    wait_for(lambda: c.get("/readyz"), 10, 0.02, what="/readyz to answer 200", until=lambda r: r.status_code == 200)


def test_readyz_reports_an_unimportable_model(serve):
    _, c = serve("no_such_module_xyz:Model")
    r = wait_for(
        lambda: c.get("/readyz"),
        10,
        0.02,
        what="/readyz to report the import error",
        until=lambda r: "could not be imported" in r.json.get("error", ""),
    )
    assert r.status_code == 503 and r.json["status"] == "not_ready"
    assert "no_such" not in r.text  # the import error's text only with credentials (test_readyz_detail_needs_auth)
    assert c.get("/health").status_code == 200


def test_a_project_updated_webhook_with_new_labels_rebuilds_the_model(serve, text_config):
    _, c = serve(CountingModel)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    changed = text_config.replace("Positive", "Great")
    r = c.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": changed}})
    assert r.status_code == 200 and r.json["status"] == "ignored"
    r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    assert r.json["results"][0]["result"][0]["value"]["choices"] == ["Great"]
    # an unrelated project's update does not build anything
    c.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 77, "label_config": changed}})
    assert c.post("/predict", json={"tasks": TASKS[:1], "project": "77"}).status_code == 404


def test_the_access_token_is_never_logged(serve, text_config, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    _, c = serve(BrokenPredictModel)
    setup_project(c, text_config, hostname="http://ls", access_token="tok-SECRET-123")
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
    c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert "tok-SECRET-123" not in caplog.text


def test_the_request_path_does_not_reparse_the_label_config(serve, text_config, monkeypatch):
    import lsml.label_config as lc

    _, c = serve(CountingModel)
    setup_project(c, text_config)
    c.post("/predict", json={"tasks": TASKS[:1], "project": "1", "label_config": text_config})
    calls = []
    original = lc.parse_config
    request_thread = threading.current_thread()  # the test client serves each request in this thread
    # parses on the request path only: the loader's own threads may (re)build off that path
    monkeypatch.setattr(
        lc,
        "parse_config",
        lambda cfg: (threading.current_thread() is request_thread and calls.append(1)) or original(cfg),
    )
    lc._parse_cached.cache_clear()
    for _ in range(20):
        r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1.17", "label_config": text_config})
        assert r.status_code == 200
    assert calls == [] and CountingModel.built == 1


def test_versions_without_a_project_lists_every_project_like_label_studio_asks(serve, text_config):
    app, c = serve(CountingModel)
    assert c.get("/versions").json == {"versions": ["0.0.1"], "projects": {}, "pinned": {}, "model_version": "0.0.1"}
    queue = app.extensions["lsml"].queue
    for project in (1, 1, 2):
        r = c.post(
            "/webhook", json={"action": "START_TRAINING", "project": {"id": project, "label_config": text_config}}
        )
        queue.wait(r.json["job"])
    body = c.get("/versions").json
    assert body == {
        "versions": ["v1", "v2"],
        "projects": {"1": ["v1", "v2"], "2": ["v1"]},
        "pinned": {},
        "model_version": "v2",
    }


class BlockingFitModel(CountingModel):
    """fit waits until the test releases it, so the test can see /webhook answer while training runs."""

    started = None
    release = None

    def fit(self, event, data, **kwargs):
        type(self).started.set()
        assert type(self).release.wait(30), "the test never released fit"
        return super().fit(event, data, **kwargs)


def test_webhook_answers_while_fit_runs_and_ignored_actions_are_fast(serve, text_config):
    import threading

    BlockingFitModel.started, BlockingFitModel.release = threading.Event(), threading.Event()
    app, c = serve(BlockingFitModel)
    setup_project(c, text_config)
    try:
        r = c.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
        assert r.status_code == 201 and r.json["status"] == "queued"
        assert BlockingFitModel.started.wait(10)  # fit is running in the queue's thread, not in the request
        assert not BlockingFitModel.release.is_set()
        t0 = time.monotonic()
        r = c.post("/webhook", json={"action": "SOMETHING_NEW", "project": {"id": 1}, "payload": "x" * 1000})
        assert r.status_code == 200 and r.json == {"status": "ignored", "action": "SOMETHING_NEW"}
        assert time.monotonic() - t0 < 1.0
        r = c.post("/predict", json={"tasks": TASKS[:1], "project": "1"})
        assert r.status_code == 200  # predictions keep serving during training
    finally:
        BlockingFitModel.release.set()
    queue = app.extensions["lsml"].queue
    wait_for(
        queue.stats,
        10,
        0.02,
        what="the queue to drain",
        until=lambda stats: stats["running"] == 0 and stats["queued"] == 0,
    )
