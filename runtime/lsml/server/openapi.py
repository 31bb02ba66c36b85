"""The OpenAPI 3.1 description of the server, built by hand (served at /openapi.json)."""

from __future__ import annotations

from lsml import __version__


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Bad input: the message names the problem"),
    "401": _json(_ref("Error"), "Basic auth required (when BASIC_AUTH_USER is set)"),
    "413": _json(_ref("Error"), "Body larger than LSML_MAX_BODY_BYTES"),
}
_AUTH = [{"basicAuth": []}, {}]


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict, *, body: dict | None = None, auth: bool = True,
        errors: bool = True, op_id: str, **extra) -> dict:
    op: dict = {"operationId": op_id, "summary": summary, "responses": dict(responses)}
    if errors:
        op["responses"].update(_ERRORS)
    if body is not None:
        op["requestBody"] = body
    if auth:
        op["security"] = _AUTH
    else:
        op["security"] = []
    op.update(extra)
    return op


_HEALTH = {"200": _json(_ref("Health"), "The server is up")}
_PROJECT_PARAM = {"name": "project", "in": "query", "required": False, "schema": {"type": "string"},
                  "description": "Project id or '<id>.<created_at>' (or send it in a JSON body); "
                                 "without a project (what Label Studio sends) every project's versions"}

SPEC: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "lsml ML backend",
        "version": __version__,
        "description": "The API Label Studio calls on an ML backend, plus probes and metrics.",
    },
    "paths": {
        "/": {"get": _op("Health (alias of /health)", _HEALTH, errors=False, op_id="index")},
        "/health": {"get": _op("Health: Label Studio calls it before setup and predict", _HEALTH, errors=False,
                               op_id="health")},
        "/setup": {"post": _op(
            "Remember a project's label config and Label Studio access; start loading its model",
            {"200": _json({"type": "object", "required": ["model_version"],
                           "properties": {"model_version": {"type": "string"}}}, "Current model version")},
            body=_body(_ref("SetupRequest")), op_id="setup")},
        "/predict": {"post": _op(
            "Predict tasks: one result item per task, in order",
            {"200": _json(_ref("PredictResponse"), "Predictions"),
             "404": _json(_ref("Error"), "Unknown project and no label_config"),
             "500": _json(_ref("Error"), "The model raised (details in the server log)"),
             "503": _json(_ref("Error"), "Model still loading, or too many predictions running")},
            body=_body(_ref("PredictRequest")), op_id="predict")},
        "/webhook": {"post": _op(
            "Label Studio events: training events are queued, others ignored",
            {"200": _json({"type": "object", "properties": {"status": {"const": "ignored"},
                                                             "action": {"type": "string"}}}, "Ignored event"),
             "201": _json(_ref("JobAccepted"), "Training queued")},
            body=_body({"type": "object", "required": ["action"],
                        "properties": {"action": {"type": "string"}, "project": {"type": "object"},
                                       "annotation": {"type": "object"}, "task": {"type": "object"}}}),
            op_id="webhook")},
        "/train": {"post": _op(
            "Legacy training call with annotated tasks",
            {"201": _json({"type": "object", "properties": {"job": {"type": "string"}}}, "Training queued")},
            body=_body({"type": "object", "required": ["annotations"],
                        "properties": {"annotations": {"type": "array", "items": {"type": "object"}},
                                       "project": {}, "label_config": {"type": "string"},
                                       "params": {"type": "object"}}}),
            op_id="train")},
        "/job_status": {"post": _op(
            "Status of a training job",
            {"200": _json(_ref("JobStatus"), "Job status"), "404": _json(_ref("Error"), "Unknown job")},
            body=_body({"type": "object", "required": ["job"], "properties": {"job": {"type": "string"}}}),
            op_id="job_status")},
        "/versions": {
            "get": _op("Model versions of a project", {"200": _json(_ref("Versions"), "Versions")},
                       op_id="versions_get", parameters=[_PROJECT_PARAM]),
            "post": _op("Model versions of a project", {"200": _json(_ref("Versions"), "Versions")},
                        body=_body({"type": "object", "properties": {"project": {}}}, required=False),
                        op_id="versions_post", parameters=[_PROJECT_PARAM]),
        },
        "/versions/activate": {"post": _op(
            "Make a kept version current for every server process; pinned by default (later fits publish "
            "new numbers but do not replace it)",
            {"200": _json(_ref("VersionReport"), "The project's versions after the change"),
             "404": _json(_ref("Error"), "No such version kept"),
             "409": _json(_ref("Error"), "The version's files fail their integrity check")},
            body=_body({"type": "object", "required": ["project", "version"], "properties": {
                "project": {}, "version": {"type": ["string", "integer"], "description": "'v3' or 3"},
                "pin": {"type": "boolean", "default": True}}}),
            op_id="versions_activate")},
        "/versions/unpin": {"post": _op(
            "Remove the pin: the newest version becomes current again, and so does every later fit",
            {"200": _json(_ref("VersionReport"), "The project's versions after the change")},
            body=_body({"type": "object", "required": ["project"], "properties": {"project": {}}}),
            op_id="versions_unpin")},
        "/prelabel": {"post": _op(
            "Queue a background pre-labelling job of a project (RQ with REDIS_URL, else a server thread); "
            "at most one per project",
            {"201": _json(_ref("PrelabelAccepted"), "Job queued"),
             "200": _json(_ref("PrelabelAccepted"), "A job of this project is already queued or running: its id"),
             "503": _json(_ref("Error"), "Redis unreachable")},
            body=_body({"type": "object", "required": ["project"], "properties": {
                "project": {}, "mode": {"enum": ["missing", "unlabelled", "all"], "default": "missing"},
                "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50},
                "max_concurrent": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1},
                "version": {"type": "string", "description": "a kept version (default: the current one)"}}}),
            op_id="prelabel")},
        "/healthz": {"get": _op("Liveness probe", {"200": _json({"type": "object"}, "Alive")}, auth=False,
                                errors=False, op_id="healthz")},
        "/readyz": {"get": _op("Readiness probe: the model class is imported",
                               {"200": _json({"type": "object"}, "Ready"),
                                "503": _json({"type": "object"}, "Not ready")},
                               auth=False, errors=False, op_id="readyz")},
        "/metrics": {"get": _op("Prometheus metrics",
                                {"200": {"description": "Prometheus text format",
                                         "content": {"text/plain": {"schema": {"type": "string"}}}}},
                                auth=False, errors=False, op_id="metrics")},
        "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                     auth=False, errors=False, op_id="openapi")},
    },
    "components": {
        "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Health": {"type": "object", "required": ["status"],
                       "properties": {"status": {"const": "UP"}, "model_class": {"type": "string"}}},
            "SetupRequest": {"type": "object", "required": ["project"], "properties": {
                "project": {"type": "string", "description": "'<id>.<created_at>'"},
                "schema": {"type": "string", "description": "Label config XML"},
                "hostname": {"type": "string"}, "access_token": {"type": "string"},
                "extra_params": {}}},
            "PredictRequest": {"type": "object", "required": ["tasks"], "properties": {
                "tasks": {"type": "array", "items": {"type": "object"}},
                "project": {"type": "string"}, "label_config": {"type": "string"},
                "params": {"type": "object"}}},
            "Prediction": {"type": "object", "properties": {
                "result": {"type": "array", "items": {"type": "object"}},
                "score": {"type": ["number", "null"]}, "model_version": {"type": "string"}}},
            "PredictResponse": {"type": "object", "required": ["results"], "properties": {
                "results": {"type": "array", "items": {"anyOf": [
                    _ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]}},
                "model_version": {"type": "string"}}},
            "JobAccepted": {"type": "object", "required": ["job"], "properties": {
                "job": {"type": "string"}, "status": {"type": "string"}, "project": {"type": "string"},
                "action": {"type": "string"}}},
            "JobStatus": {"type": "object", "required": ["job", "status"], "properties": {
                "job": {"type": "string"},
                "status": {"enum": ["queued", "started", "finished", "failed"]},
                "job_status": {"enum": ["queued", "started", "finished", "failed"],
                               "description": "Same as status (the key Label Studio reads)"},
                "error": {"type": ["string", "null"]}, "model_version": {"type": ["string", "null"]},
                "kind": {"const": "prelabel", "description": "only on pre-labelling jobs"},
                "progress": {"type": ["object", "null"], "description": "pre-labelling: done, total, rate "
                             "(tasks/s), eta (s), predicted, written, skipped, resumed_after"}}},
            "Versions": {"type": "object", "required": ["versions", "model_version"], "properties": {
                "project": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                "details": {"type": "array", "items": {"type": "object"}},
                "projects": {"type": "object", "description": "project -> version names (no project given)"},
                "pinned": {"type": ["string", "object", "null"],
                           "description": "the pinned version (null: none); without a project, project -> pinned"},
                "current": {"type": ["string", "null"]}, "latest": {"type": ["string", "null"]},
                "model_version": {"type": "string"}}},
            "PrelabelAccepted": {"type": "object", "required": ["job", "created"], "properties": {
                "job": {"type": "string"}, "status": {"enum": ["queued", "active"]}, "project": {"type": "string"},
                "created": {"type": "boolean"}}},
            "VersionReport": {"type": "object", "required": ["project", "versions", "current", "pinned"],
                              "properties": {
                "project": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                "details": {"type": "array", "items": {"type": "object"}},
                "current": {"type": ["string", "null"]}, "pinned": {"type": ["string", "null"]},
                "latest": {"type": ["string", "null"]}}},
        },
    },
}
