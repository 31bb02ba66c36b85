"""Issue 12: request bodies are pydantic models (lsml.server.bodies) that both check a request and give
/openapi.json its request schemas. What that must keep: the codes and shape of the 400s, the field path in
the message, no value echoed (a token may be the bad value), and Label Studio's extra fields accepted."""

from __future__ import annotations

import pytest

from lsml.server import bodies
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit

SECRET = "tok-4f9e1b7c-never-echoed"


@pytest.fixture
def client(serve, text_config):
    _, c = serve(CountingModel, admin_token="admin")  # the admin routes' bodies are checked too
    assert c.post("/setup", json={"project": "1.1", "schema": text_config}).status_code == 200
    return c


def test_openapi_request_schemas_are_the_models_schemas(client):
    """One declaration: what /openapi.json publishes for a body is the schema of the model that checks it."""
    spec = client.get("/openapi.json").json
    schemas = spec["components"]["schemas"]
    routes = {
        "/setup": bodies.SetupBody,
        "/predict": bodies.PredictBody,
        "/webhook": bodies.WebhookBody,
        "/train": bodies.TrainBody,
        "/job_status": bodies.JobStatusBody,
        "/versions": bodies.VersionsBody,
        "/versions/activate": bodies.ActivateBody,
        "/versions/unpin": bodies.UnpinBody,
        "/prelabel": bodies.PrelabelBody,
    }
    for path, model in routes.items():
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        name = ref.rsplit("/", 1)[1]
        assert name == model.__name__, (path, ref)
        published = schemas[name]
        assert published["properties"].keys() == model.model_json_schema()["properties"].keys(), path
        assert published.get("required", []) == model.model_json_schema().get("required", []), path
    assert schemas["PrelabelBody"]["additionalProperties"] is False  # lsml's own call refuses unknown fields
    assert schemas["PredictBody"]["additionalProperties"] is True  # Label Studio's bodies carry more fields
    batch = schemas["PrelabelBody"]["properties"]["batch_size"]
    assert (batch["minimum"], batch["maximum"], batch["type"]) == (1, 10_000, "integer")
    (query,) = spec["paths"]["/versions"]["get"]["parameters"]
    assert query["name"] == "project" and query["in"] == "query" and "pattern" in query["schema"], query


@pytest.mark.parametrize(
    "path,body,code,where",
    [
        ("/predict", {"tasks": [{"id": 1}, "x"], "project": "1"}, "invalid_tasks", "'tasks.1'"),
        ("/predict", {"tasks": None, "project": "1"}, "missing_tasks", "'tasks'"),
        ("/predict", {"tasks": [], "project": True}, "invalid_project", "'project'"),
        ("/predict", {"tasks": [], "project": ["1"]}, "invalid_project", "'project'"),
        ("/webhook", {"action": "START_TRAINING", "project": {"title": "no id"}}, "invalid_project", "'project.id'"),
        (
            "/webhook",
            {"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": 5}},
            "invalid_label_config",
            "'project.label_config'",
        ),
        ("/train", {"annotations": [{"id": 1}, 2]}, "missing_annotations", "'annotations.1'"),
        ("/versions/activate", {"project": "1", "version": True}, "invalid_version", "'version'"),
        ("/versions/activate", {"project": "1", "version": "v1", "pin": "yes"}, "invalid_pin", "'pin'"),
        ("/versions/unpin", {"project": None}, "missing_project", "'project'"),
        ("/prelabel", {"project": 1, "batch_size": 10_001}, "invalid_prelabel", "'batch_size'"),
        ("/prelabel", {"project": 1, "btach_size": 5}, "invalid_field", "'btach_size'"),
    ],
)
def test_a_bad_field_is_a_400_naming_its_path(client, path, body, code, where):
    r = client.post(path, json=body, headers={"Authorization": "Bearer admin"})
    assert r.status_code == 400, r.json
    assert set(r.json) == {"error", "message"} and r.json["error"] == code, r.json
    assert where in r.json["message"], r.json


@pytest.mark.parametrize(
    "body",
    [
        {"project": "1", "access_token": {"token": SECRET}},
        {"project": "1", "access_token": [SECRET]},
        {"project": "1", "hostname": f"ftp://{SECRET}@example.org"},
        {"project": "1", "hostname": 7, "access_token": SECRET},
    ],
)
def test_a_refused_setup_never_echoes_the_value(client, body):
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and r.json["error"] == "invalid_field", r.json
    assert SECRET not in r.get_data(as_text=True)


def test_integral_floats_are_integers_and_booleans_are_not(client):
    """JSON Schema's rule: 3.0 is the integer 3, true is no integer (a serializer may write either)."""
    r = client.post("/versions", json={"project": 1.0})
    assert r.status_code == 200 and r.json["project"] == "1", r.json
    r = client.post("/versions", json={"project": False})
    assert r.status_code == 400 and r.json["error"] == "invalid_project", r.json


def test_label_studio_extra_fields_are_still_accepted(client, text_config):
    """Label Studio sends more than lsml reads (task fields, project fields, unknown keys): none is refused."""
    tasks = [
        {
            "id": 1,
            "data": {"text": "hi"},
            "meta": {},
            "annotations": [],
            "predictions": [],
            "inner_id": 1,
            "model_config": "a task field that shadows nothing",
        }
    ]
    r = client.post(
        "/predict",
        json={
            "tasks": tasks,
            "project": "1.1",
            "label_config": text_config,
            "params": {"login": None, "password": None, "context": None},
            "model_version": "v9",
            "ERRORS": 1,
        },
    )
    assert r.status_code == 200 and len(r.json["results"]) == 1, r.json
    r = client.post(
        "/setup",
        json={
            "project": "1.1",
            "schema": text_config,
            "hostname": "",
            "access_token": "",
            "extra_params": None,
            "something_new": True,
        },
    )
    assert r.status_code == 200, r.json
    r = client.post(
        "/webhook",
        json={
            "action": "TASKS_CREATED",
            "project": {"id": 1, "title": "t", "label_config": text_config},
            "tasks": [{"id": 1}],
        },
    )
    assert r.status_code == 200 and r.json["status"] == "ignored", r.json
