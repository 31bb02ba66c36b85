"""`/predict` beside Flask (`lsml.server.fast_predict`, issue 21 part 1): the same answers as through Flask, byte for
byte, for the requests it takes and for those it hands over; the same metrics; and it steps aside when the app has
something it does not cover."""

from __future__ import annotations

import base64
import io

import pytest

from lsml.server.fast_predict import PredictFastPath, uncovered
from tests.fixtures.sample_models import BadReturnModel, BrokenPredictModel, CountingModel

pytestmark = pytest.mark.unit

BASIC = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
TASKS = {"tasks": [{"id": 1, "data": {"text": "good"}}, {"id": 2, "data": {"text": "bad"}}], "project": "7.1"}


class Counted:
    """Counts the requests the fast path hands to Flask."""

    def __init__(self, fast: PredictFastPath) -> None:
        self.handed_over = 0
        self._flask = fast.flask_wsgi_app
        fast.flask_wsgi_app = self

    def __call__(self, environ, start_response):
        self.handed_over += 1
        return self._flask(environ, start_response)


def _pair(serve, text_config, model=CountingModel, **overrides):
    """The same app twice: with the fast path (and a count of what it hands over), and with Flask alone."""
    fast_app, fast = serve(model, **overrides)
    _, flask_only = serve(model, predict_fast_path=False, **overrides)
    assert isinstance(fast_app.wsgi_app, PredictFastPath)
    headers = BASIC if overrides.get("basic_auth_user") else {}
    for client in (fast, flask_only):
        assert client.post("/setup", json={"project": "7.1", "schema": text_config}, headers=headers).status_code == 200
    return fast, flask_only, Counted(fast_app.wsgi_app)


def _same(fast, flask_only, **request):
    a, b = fast.post("/predict", **request), flask_only.post("/predict", **request)
    assert (a.status, sorted(a.headers.items()), a.data) == (b.status, sorted(b.headers.items()), b.data)
    return a


def test_lsmls_own_app_is_covered_whole_so_the_fast_path_is_on(serve):
    for overrides in ({}, {"basic_auth_user": "u", "basic_auth_pass": "p", "admin_token": "t"}):
        app, _ = serve(CountingModel, **overrides)
        assert uncovered(app) == []
        assert app.wsgi_app.on


def test_the_requests_it_takes_get_flasks_answer_byte_for_byte(serve, text_config):
    fast, flask_only, counted = _pair(serve, text_config)
    r = _same(fast, flask_only, json=TASKS)
    assert r.status_code == 200 and len(r.json["results"]) == 2
    assert r.headers["Content-Type"] == "application/json"
    _same(fast, flask_only, json={"tasks": [], "project": "7.1"})
    assert counted.handed_over == 0, "the fast path took the plain requests"


@pytest.mark.parametrize(
    ("request_", "status", "code"),
    [
        ({"data": b"garbage", "content_type": "application/json"}, 400, "invalid_json"),
        ({"json": [1, 2]}, 400, "invalid_json"),
        ({"json": {"tasks": "no list", "project": "7.1"}}, 400, None),
        ({"json": {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "99.1"}}, None, None),
        ({"json": {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "7.1", "extra": {"a": [1] * 3}}}, 200, None),
    ],
    ids=["not-json", "not-an-object", "invalid-tasks", "unknown-project", "extra-keys"],
)
def test_its_errors_are_flasks_errors(serve, text_config, request_, status, code):
    fast, flask_only, counted = _pair(serve, text_config)
    r = _same(fast, flask_only, **request_)
    if status is not None:
        assert r.status_code == status, r.json
    if code is not None:
        assert r.json["error"] == code
    assert counted.handed_over == 0, "taken by the fast path, rendered by Flask's handlers in a request context"


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        ({"json": TASKS, "query_string": "=x"}, "a query string"),
        ({"json": TASKS, "query_string": "project=7.1"}, "a query string"),
        ({"data": b"x" * 5000, "content_type": "application/json"}, "a body over LSML_MAX_BODY_BYTES"),
        ({"data": b"", "content_type": "application/json"}, "no body"),
    ],
)
def test_what_it_does_not_take_flask_answers_unread(serve, text_config, request_, why):
    fast, flask_only, counted = _pair(serve, text_config, max_body_bytes=4096)
    r = _same(fast, flask_only, **request_)
    assert counted.handed_over == 1, why
    assert r.status_code in (200, 400, 413), r.json


def test_basic_auth_right_is_served_here_and_wrong_or_missing_is_flasks_401(serve, text_config):
    fast, flask_only, counted = _pair(serve, text_config, basic_auth_user="u", basic_auth_pass="p")
    assert _same(fast, flask_only, json=TASKS, headers=BASIC).status_code == 200
    assert counted.handed_over == 0
    wrong = {"Authorization": "Basic " + base64.b64encode(b"u:wrong").decode()}
    for headers in (wrong, {}, {"Authorization": "Bearer p"}):
        r = _same(fast, flask_only, json=TASKS, headers=headers)
        assert r.status_code == 401 and r.json["error"] == "unauthorized"
    assert counted.handed_over == 3


@pytest.mark.parametrize(("model", "code"), [(BrokenPredictModel, "model_error"), (BadReturnModel, "bad_prediction")])
def test_a_model_that_fails_gets_the_same_500(serve, text_config, model, code):
    fast, flask_only, counted = _pair(serve, text_config, model=model)
    r = _same(fast, flask_only, json=TASKS)
    assert r.status_code == 500 and r.json["error"] == code
    assert counted.handed_over == 0


class _TooSlow(io.BytesIO):
    def read(self, size=-1):
        raise TimeoutError("timed out")  # the worker's read timeout on a slow client's socket

    readinto = read


@pytest.mark.parametrize(
    "stream", [lambda body: io.BytesIO(body[:-5]), lambda body: _TooSlow(body)], ids=["gone-early", "too-slow"]
)
def test_a_client_that_sends_less_than_its_content_length_gets_flasks_400(serve, text_config, stream):
    from werkzeug.test import EnvironBuilder

    fast, flask_only, counted = _pair(serve, text_config)
    body = b'{"tasks": [], "project": "7.1"}'
    answers = []
    for client in (fast, flask_only):
        env = EnvironBuilder(path="/predict", method="POST", data=body, content_type="application/json").get_environ()
        env["wsgi.input"] = stream(body)
        statuses = []
        out = b"".join(client.application.wsgi_app(env, lambda status, headers, exc_info=None: statuses.append(status)))
        answers.append((statuses, out))
    assert answers[0] == answers[1]
    assert answers[0][0] == ["400 BAD REQUEST"], answers
    assert counted.handed_over == 1


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_its_requests_and_errors_are_counted_as_flasks_are(serve, text_config):
    app, c = serve(BrokenPredictModel)
    ok_app, ok = serve(CountingModel)
    for client in (c, ok):
        client.post("/setup", json={"project": "7.1", "schema": text_config})
    served = 'lsml_http_requests_total{method="POST",route="/predict",status="200"}'
    failed = 'lsml_http_requests_total{method="POST",route="/predict",status="500"}'
    timed = 'lsml_http_request_duration_seconds_count{route="/predict"}'
    errors = 'lsml_http_errors_total{error="model_error"}'
    before = ok.get("/metrics").get_data(as_text=True)
    counted = Counted(app.wsgi_app), Counted(ok_app.wsgi_app)
    assert ok.post("/predict", json=TASKS).status_code == 200
    assert c.post("/predict", json=TASKS).status_code == 500
    assert [x.handed_over for x in counted] == [0, 0]
    after = ok.get("/metrics").get_data(as_text=True)
    assert _sample(after, served) == _sample(before, served) + 1
    assert _sample(after, failed) == _sample(before, failed) + 1
    assert _sample(after, timed) == _sample(before, timed) + 2
    assert _sample(after, errors) == _sample(before, errors) + 1


def test_a_hook_it_does_not_know_turns_it_off_and_the_hook_runs(serve, text_config):
    app, c = serve(CountingModel)
    seen = []

    @app.before_request
    def user_hook():
        seen.append(1)

    assert [m for m in uncovered(app) if "user_hook" in m]
    c.post("/setup", json={"project": "7.1", "schema": text_config})
    counted = Counted(app.wsgi_app)
    assert c.post("/predict", json=TASKS).status_code == 200
    assert not app.wsgi_app.on and counted.handed_over == 1 and len(seen) == 2


def test_a_predict_route_of_the_users_turns_it_off(serve):
    app, c = serve(CountingModel)
    app.view_functions["lsml.predict"] = lambda: {"mine": True}
    assert uncovered(app) == ["/predict routes to lsml.predict, not lsml's view"]
    assert c.post("/predict", json=TASKS).json == {"mine": True}
