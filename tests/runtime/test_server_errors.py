"""Bad input gets a 4xx JSON body naming the problem; the server stays up."""

import pytest

from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit


@pytest.fixture
def client(serve, text_config):
    _, c = serve(CountingModel, max_body_bytes=2048)
    assert c.post("/setup", json={"project": "1.1", "schema": text_config}).status_code == 200
    return c


@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook", "/train", "/job_status"])
def test_non_json_bodies_are_400(client, path):
    r = client.post(path, data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.json["error"] == "invalid_json" and "JSON" in r.json["message"]
    r = client.post(path, json=[1, 2])
    assert r.status_code == 400 and "object" in r.json["message"]
    r = client.post(path, data="")
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body,code",
    [
        ({"project": "1"}, "missing_tasks"),
        ({"tasks": "abc", "project": "1"}, "invalid_tasks"),
        ({"tasks": [1, 2], "project": "1"}, "invalid_tasks"),
        ({"tasks": [], "project": "../x"}, "invalid_project"),
        ({"tasks": [{"id": 1}], "project": "1", "params": "x"}, "invalid_params"),
        ({"tasks": [{"id": 1}], "project": "1", "label_config": 5}, "invalid_label_config"),
        ({"tasks": [{"id": 1}], "project": "1", "label_config": "<View><broken"}, "invalid_label_config"),
    ],
)
def test_bad_predict_requests_name_the_problem(client, body, code):
    r = client.post("/predict", json=body)
    assert r.status_code == 400 and r.json["error"] == code and r.json["message"]


def test_predict_for_an_unknown_project_is_404(client):
    r = client.post("/predict", json={"tasks": [{"id": 1}], "project": "99.1"})
    assert r.status_code == 404 and r.json["error"] == "unknown_project"


def test_setup_with_broken_xml_is_400_naming_the_parse_error(client):
    r = client.post("/setup", json={"project": "2.1", "schema": "<View><Text name='t' value='$t'></View>"})
    assert r.status_code == 400 and r.json["error"] == "invalid_label_config"
    assert "not valid XML" in r.json["message"] and "line" in r.json["message"]


@pytest.mark.parametrize(
    "body,code",
    [
        ({}, "missing_project"),
        ({"project": {"x": 1}}, "invalid_project"),
        ({"project": "1", "schema": 3}, "invalid_label_config"),
        ({"project": "1", "access_token": 3}, "invalid_field"),
    ],
)
def test_bad_setup_requests(client, body, code):
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and r.json["error"] == code


@pytest.mark.parametrize(
    "body,code",
    [
        ({"project": {"id": 1}}, "missing_action"),
        ({"action": "START_TRAINING"}, "missing_project"),
        ({"action": "START_TRAINING", "project": {"no": "id"}}, "invalid_project"),
    ],
)
def test_bad_webhooks(client, body, code):
    r = client.post("/webhook", json=body)
    assert r.status_code == 400 and r.json["error"] == code


def test_bad_train_and_job_status_requests(client):
    assert client.post("/train", json={"annotations": []}).json["error"] == "missing_annotations"
    assert client.post("/job_status", json={"job": 3}).json["error"] == "missing_job"
    assert client.get("/versions?project=../x").json["error"] == "invalid_project"


def test_oversized_bodies_are_413(client):
    r = client.post("/predict", json={"tasks": [{"data": {"text": "x" * 5000}}], "project": "1"})
    assert r.status_code == 413 and r.json["error"] == "body_too_large"
    assert "LSML_MAX_BODY_BYTES" in r.json["message"]


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json["error"] == "not_found"
    r = client.get("/predict")
    assert r.status_code == 405 and r.json["error"] == "method_not_allowed"


def test_server_keeps_serving_after_errors(client):
    client.post("/predict", data="garbage")
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1"})
    assert r.status_code == 200
