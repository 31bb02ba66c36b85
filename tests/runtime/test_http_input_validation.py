"""Issue 10, item 4: bad input gets a 4xx JSON naming the problem (never a 500), a dependency that is down a 503
with Retry-After.

Every test talks to a real gunicorn server (tests/fixtures/rq_procs.py) over a socket, so the
request parsing, the error handlers and gunicorn's own handling are the production ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.fixtures.label_studio import SENTIMENT_CONFIG as TEXT_CONFIG
from tests.fixtures.rq_procs import Procs, start_server, write_backend

TASKS = [{"id": 7, "data": {"text": "hello"}}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One gunicorn server (1 worker, embedded training, sqlite state) for the tests that need no Redis."""
    tmp = tmp_path_factory.mktemp("input-validation")
    procs = Procs(tmp)
    backend = write_backend(tmp / "backend")
    url = start_server(procs, backend, None, workers=1)
    yield url, backend, procs
    procs.stop_all()


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def assert_json_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == code and body["message"], body
    return body


@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook", "/train", "/job_status", "/versions"])
def test_json_nested_past_the_parsers_limit_is_a_400(server, path):
    """orjson refuses depth > 1024; the stdlib fallback then raised RecursionError (a 500)."""
    url, _, procs = server
    r = requests.post(url + path, data=_nested(5000), headers={"Content-Type": "application/json"}, timeout=10)
    body = assert_json_error(r, 400, "invalid_json")
    assert "nested" in body["message"]
    assert "RecursionError" not in procs.log("server")


def test_a_deep_webhook_payload_is_a_400_not_a_failed_copy(server):
    """A body orjson accepts (depth <= 1024) but that recursion-bound copies (state, RQ jobs) cannot hold."""
    url, _, _ = server
    deep = '{"action": "START_TRAINING", "project": {"id": 1}, "annotation": ' + _nested(900) + "}"
    r = requests.post(url + "/webhook", data=deep, headers={"Content-Type": "application/json"}, timeout=10)
    assert "nested more than 64" in assert_json_error(r, 400, "invalid_json")["message"]
    # Label Studio's real payloads are a handful of levels deep and still queue
    r = requests.post(
        url + "/webhook",
        json={
            "action": "START_TRAINING",
            "project": {"id": 1, "label_config": TEXT_CONFIG},
            "annotation": {"result": [{"value": {"choices": ["Positive"]}}]},
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/setup", '{"project": 1e300, "schema": %s}', "'project'"),
        ("/versions", '{"project": 1e300}', "'project'"),
        ("/predict", '{"project": 1e300, "tasks": [], "label_config": %s}', "'project'"),
        ("/train", '{"project": 1e300, "annotations": [{"id": 1}]}', "'project'"),
        ("/webhook", '{"action": "START_TRAINING", "project": {"id": 1e300}}', "'project.id'"),
        ("/setup", '{"project": %d, "schema": %%s}' % 10**400, "'project'"),  # noqa: UP031 - its %s is filled later
        ("/setup", '{"project": -3, "schema": %s}', "'project'"),
    ],
)
def test_huge_numeric_project_ids_are_refused_naming_the_field(server, path, body, field):
    """1e300 is an integral float: its 301 digits became a directory name (OSError: File name too long
    on /versions, a failed background build after a /setup that answered 200)."""
    url, backend, procs = server
    data = body % _json_str(TEXT_CONFIG) if "%s" in body else body
    r = requests.post(url + path, data=data, headers={"Content-Type": "application/json"}, timeout=10)
    message = assert_json_error(r, 400, "invalid_project")["message"]
    assert field in message
    models = backend / "data" / "models"
    assert not any(len(p.name) > 64 for p in models.iterdir()) if models.exists() else True
    assert "File name too long" not in procs.log("server")


def test_label_studio_project_names_still_work(server):
    url, _, _ = server
    r = requests.post(url + "/setup", json={"project": "12.1700000000", "schema": TEXT_CONFIG}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(url + "/versions", json={"project": 12.0}, timeout=10)
    assert r.status_code == 200 and r.json()["project"] == "12", r.text
    r = requests.get(url + "/versions", params={"project": "12.1700000000"}, timeout=10)
    assert r.status_code == 200 and r.json()["project"] == "12", r.text


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


@pytest.mark.redis
def test_redis_down_setup_without_schema_and_predict_without_config_are_503(tmp_path, private_redis):
    """The project's label config lives in Redis; with Redis stopped, a request that must read it gets a 503,
    Retry-After and a JSON body that never names the Redis URL (not the ConnectionError's 500)."""
    procs = Procs(tmp_path)
    try:
        backend = write_backend(tmp_path / "backend")
        url = start_server(procs, backend, private_redis.url, workers=1)
        r = requests.post(url + "/setup", json={"project": "1.1", "schema": TEXT_CONFIG}, timeout=10)
        assert r.status_code == 200, r.text

        private_redis.stop()
        r = requests.post(url + "/setup", json={"project": "2.1"}, timeout=10)
        body = assert_json_error(r, 503, "state_unavailable")
        assert r.headers["Retry-After"].isdigit() and "Redis" in body["message"]
        assert private_redis.url not in r.text and str(private_redis.port) not in body["message"]
        r = requests.post(url + "/predict", json={"tasks": TASKS, "project": "2.1"}, timeout=10)
        assert_json_error(r, 503, "state_unavailable")
        assert r.headers["Retry-After"].isdigit()
        # what needs no state keeps serving: a predict that carries its config
        r = requests.post(
            url + "/predict", json={"tasks": TASKS, "project": "3.1", "label_config": TEXT_CONFIG}, timeout=30
        )
        assert r.status_code == 200, r.text
        assert "internal_error" not in procs.log("server")
    finally:
        procs.stop_all()


def test_trace_gets_405_with_allow(server):
    """RFC 9110: a 405 names the allowed methods (the JSON error body had dropped werkzeug's Allow header)."""
    url, _, _ = server
    for path, allowed in [("/predict", {"POST"}), ("/versions", {"GET", "POST"}), ("/healthz", {"GET"})]:
        r = requests.request("TRACE", url + path, timeout=10)
        assert_json_error(r, 405, "method_not_allowed")
        assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}, r.headers


def test_private_state_file_is_0600_with_its_wal_and_shm(tmp_path):
    """state.sqlite3 holds /setup's Label Studio access tokens; it was created with the umask (0644)."""
    from lsml.state import SqliteState

    old = os.umask(0o022)
    try:
        state = SqliteState(tmp_path / ".lsml" / "state.sqlite3")
        state.set("1", "access_token", "secret")
        assert state.get("1", "access_token") == "secret"
    finally:
        os.umask(old)
    files = sorted((tmp_path / ".lsml").iterdir())
    assert {f.name for f in files} >= {"state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"}, files
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, f"{f.name}: {oct(f.stat().st_mode & 0o777)}"
    assert (tmp_path / ".lsml").stat().st_mode & 0o777 == 0o700


def test_an_existing_world_readable_state_file_is_narrowed(tmp_path):
    from lsml.state import SqliteState

    path = tmp_path / "state.sqlite3"
    SqliteState(path).set("1", "k", "v")
    path.chmod(0o644)
    assert SqliteState(path).get("1", "k") == "v"
    assert path.stat().st_mode & 0o777 == 0o600


def test_server_creates_its_state_file_private(server):
    url, backend, _ = server
    assert (
        requests.post(
            url + "/setup", json={"project": "5", "schema": TEXT_CONFIG, "access_token": "tok-5"}, timeout=10
        ).status_code
        == 200
    )
    state = Path(backend) / "data" / "models" / ".lsml" / "state.sqlite3"
    assert state.stat().st_mode & 0o777 == 0o600


def _publish(store, project: str) -> None:
    with store.staging(project) as staged:
        (staged / "fit.json").write_text('{"n": 1}')
        store.publish(project, staged)


@pytest.mark.parametrize(
    "version",
    ["v" + "9" * 5000, "9" * 5000, "v²", 10**19],
    ids=["v-and-5000-digits", "5000-digits", "superscript-digit", "past-int64"],
)
def test_a_version_no_int_can_hold_is_a_400_or_404_naming_the_field(serve, settings, version):
    """Issue 22 item 9: with a kept version to compare with, a 5,000-digit version reached `int()` (Python's
    4,300-digit limit), and "v²" too (`isdigit()`, but not `int()`): a 500."""
    from lsml.store import LocalModelStore
    from tests.fixtures.sample_models import CountingModel

    _publish(LocalModelStore(settings.model_dir), "1")
    _, c = serve(CountingModel, admin_token="admin")  # /versions/activate is an admin route
    admin = {"Authorization": "Bearer admin"}
    r = c.post("/versions/activate", json={"project": "1", "version": version}, headers=admin)
    assert r.status_code in (400, 404), r.json
    assert r.json["error"] in ("invalid_version", "unknown_version"), r.json
    assert "version" in r.json["message"] and len(r.json["message"]) < 300, r.json
    assert c.post("/versions/activate", json={"project": "1", "version": "v1"}, headers=admin).status_code == 200


def test_store_find_never_raises_but_key_error(tmp_path):
    from lsml.store import LocalModelStore

    store = LocalModelStore(tmp_path)
    _publish(store, "1")
    for version in ("v" + "9" * 5000, "v²", "v-1", "", "latest", 10**30):
        with pytest.raises(KeyError):
            store.find("1", version)
    assert store.find("1", "v1").number == 1


@pytest.mark.parametrize("job", ["a b", "a:b", "x" * 129, "é"])
def test_job_status_with_an_id_rq_refuses_is_a_400_in_redis_mode(serve, redis_url, job):
    """Issue 22 item 9: RQ's `validate_job_id` raised ValueError on such an id: a 500 in Redis mode."""
    from tests.fixtures.sample_models import CountingModel

    _, c = serve(CountingModel, redis_url=redis_url)
    r = c.post("/job_status", json={"job": job})
    assert r.status_code == 400, r.json
    assert r.json["error"] == "missing_job", r.json  # the code every bad job id has had
    assert "'job'" in r.json["message"], r.json
    assert c.post("/job_status", json={"job": "a" * 32}).status_code == 404, "a well-formed unknown id: 404"
