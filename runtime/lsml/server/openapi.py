"""The OpenAPI 3.1 description of the server (served at /openapi.json).

Request bodies and query parameters are the JSON Schemas of the pydantic models the routes validate
with (`server/bodies.py`): one declaration, so a bound the server enforces is the bound published.
Responses, status codes and security are written here by hand: the routes build plain dicts (orjson
encodes them; a response model per route would cost /predict a copy of every prediction), and
tests/runtime/test_openapi_fuzz.py (schemathesis against a live server) checks every response against
this document.
"""

from __future__ import annotations

from pydantic.json_schema import models_json_schema

from lsml import __version__
from lsml.server import bodies


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Bad input: the message names the problem"),
    "413": _json(_ref("Error"), "Body larger than LSML_MAX_BODY_BYTES"),
}
_UNAUTHORIZED = {"401": _json(_ref("Error"), "Basic auth required (when BASIC_AUTH_USER is set)")}
_ADMIN_REFUSED = {
    "401": _json(_ref("Error"), "Admin credentials required: Bearer LSML_ADMIN_TOKEN, or Basic auth when it is on"),
    "403": _json(_ref("Error"), "Admin routes disabled: neither LSML_ADMIN_TOKEN nor Basic auth is configured"),
}
#: The admin routes (never called by Label Studio) always need credentials: the admin token or Basic auth.
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}, {"basicAuth": []}]
_TRAINING_DOWN = {"503": _json(_ref("Error"), "Redis (the training queue) unreachable: try again after Retry-After")}
_AUTH: list[dict[str, list[str]]] = [
    {"basicAuth": []},
    {},
]  # optional: the server decides (BASIC_AUTH_USER); see `document`


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    responses: dict,
    *,
    body: dict | None = None,
    auth: bool = True,
    admin: bool = False,
    errors: bool = True,
    op_id: str,
    **extra,
) -> dict:
    op: dict = {"operationId": op_id, "summary": summary, "responses": dict(responses)}
    if errors:
        op["responses"].update(_ERRORS)
    if body is not None:
        op["requestBody"] = body
    if admin:
        op["security"] = _ADMIN
        op["responses"].update(_ADMIN_REFUSED)
    elif auth:
        op["security"] = _AUTH
        op["responses"].update(_UNAUTHORIZED)
    else:
        op["security"] = []
    op.update(extra)
    return op


_HEALTH = {"200": _json(_ref("Health"), "The server is up")}
_REQUESTS = (
    bodies.SetupBody,
    bodies.PredictBody,
    bodies.WebhookBody,
    bodies.TrainBody,
    bodies.JobStatusBody,
    bodies.VersionsBody,
    bodies.ActivateBody,
    bodies.UnpinBody,
    bodies.PrelabelBody,
)
_, _DEFS = models_json_schema(
    [(model, "validation") for model in _REQUESTS], ref_template="#/components/schemas/{model}"
)
REQUEST_SCHEMAS: dict[str, dict] = _DEFS["$defs"]  # the models' schemas and those they refer to (WebhookProject)


def _request(model: type[bodies.Body], required: bool = True) -> dict:
    return _body(_ref(model.__name__), required)


def _query(model: type[bodies.Body]) -> list[dict]:
    """A query model's fields as OpenAPI parameters (a query string carries no null: that branch is dropped)."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
        prop.pop("default", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
                "description": description,
            }
        )
    return parameters


SPEC: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "lsml ML backend",
        "version": __version__,
        "description": "The API Label Studio calls on an ML backend, plus probes and metrics.",
    },
    "paths": {
        "/": {"get": _op("Health (alias of /health)", _HEALTH, errors=False, op_id="index")},
        "/health": {
            "get": _op(
                "Health: Label Studio calls it before setup and predict",
                _HEALTH,
                errors=False,
                op_id="health",
            )
        },
        "/setup": {
            "post": _op(
                "Remember a project's label config and Label Studio access; start loading its model",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["model_version"],
                            "properties": {"model_version": {"type": "string"}},
                        },
                        "Current model version",
                    ),
                    "404": _json(_ref("Error"), "No schema, and no label config known for the project"),
                    "503": _json(_ref("Error"), "Redis (the state store) unreachable: try again after Retry-After"),
                },
                body=_request(bodies.SetupBody),
                op_id="setup",
            )
        },
        "/predict": {
            "post": _op(
                "Predict tasks: one result item per task, in order",
                {
                    "200": _json(_ref("PredictResponse"), "Predictions"),
                    "404": _json(_ref("Error"), "Unknown project and no label_config"),
                    "500": _json(_ref("Error"), "The model raised (details in the server log)"),
                    "503": _json(
                        _ref("Error"),
                        "Model still loading, too many predictions running, too many "
                        "predictions stuck past LSML_PREDICT_TIMEOUT (predict_stuck), or no "
                        "label_config and Redis (the state store) unreachable",
                    ),
                    "504": _json(_ref("Error"), "The model's predict ran past LSML_PREDICT_TIMEOUT (predict_timeout)"),
                },
                body=_request(bodies.PredictBody),
                op_id="predict",
            )
        },
        "/webhook": {
            "post": _op(
                "Label Studio events: training events are queued, others ignored",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"status": {"const": "ignored"}, "action": {"type": "string"}},
                        },
                        "Ignored event",
                    ),
                    "201": _json(_ref("JobAccepted"), "Training queued"),
                    **_TRAINING_DOWN,
                },
                body=_request(bodies.WebhookBody),
                op_id="webhook",
            )
        },
        "/train": {
            "post": _op(
                "Legacy training call with annotated tasks",
                {
                    "201": _json({"type": "object", "properties": {"job": {"type": "string"}}}, "Training queued"),
                    **_TRAINING_DOWN,
                },
                body=_request(bodies.TrainBody),
                op_id="train",
            )
        },
        "/job_status": {
            "post": _op(
                "Status of a training job",
                {
                    "200": _json(_ref("JobStatus"), "Job status"),
                    "404": _json(_ref("Error"), "Unknown job"),
                    **_TRAINING_DOWN,
                },
                body=_request(bodies.JobStatusBody),
                op_id="job_status",
            )
        },
        "/versions": {
            "get": _op(
                "Model versions of a project",
                {"200": _json(_ref("Versions"), "Versions")},
                op_id="versions_get",
                parameters=_query(bodies.VersionsQuery),
            ),
            "post": _op(
                "Model versions of a project",
                {"200": _json(_ref("Versions"), "Versions")},
                body=_request(bodies.VersionsBody, required=False),
                op_id="versions_post",
                parameters=_query(bodies.VersionsQuery),
            ),
        },
        "/versions/activate": {
            "post": _op(
                "Make a kept version current for every server process; pinned by default (later fits publish "
                "new numbers but do not replace it)",
                {
                    "200": _json(_ref("VersionReport"), "The project's versions after the change"),
                    "404": _json(_ref("Error"), "No such version kept"),
                    "409": _json(_ref("Error"), "The version's files fail their integrity check"),
                },
                body=_request(bodies.ActivateBody),
                op_id="versions_activate",
                admin=True,
            )
        },
        "/versions/unpin": {
            "post": _op(
                "Remove the pin: the newest version becomes current again, and so does every later fit",
                {"200": _json(_ref("VersionReport"), "The project's versions after the change")},
                body=_request(bodies.UnpinBody),
                op_id="versions_unpin",
                admin=True,
            )
        },
        "/prelabel": {
            "post": _op(
                "Queue a background pre-labelling job of a project (RQ with REDIS_URL, else a server thread); "
                "at most one per project",
                {
                    "201": _json(_ref("PrelabelAccepted"), "Job queued"),
                    "200": _json(
                        _ref("PrelabelAccepted"), "A job of this project is already queued or running: its id"
                    ),
                    "429": _json(
                        _ref("Error"),
                        "prelabel_busy (with Retry-After): LSML_PRELABEL_MAX_RUNNING + LSML_PRELABEL_MAX_QUEUED jobs "
                        "already running or queued in this server, or with Redis LSML_PRELABEL_MAX_QUEUED jobs "
                        "waiting on the queue",
                    ),
                    "503": _json(_ref("Error"), "Redis unreachable"),
                },
                body=_request(bodies.PrelabelBody),
                op_id="prelabel",
                admin=True,
            )
        },
        "/healthz": {
            "get": _op(
                "Liveness probe",
                {
                    "200": _json({"type": "object"}, "Alive"),
                    "503": _json({"type": "object"}, "Predictions stuck: restart me"),
                },
                auth=False,
                errors=False,
                op_id="healthz",
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness probe: the model class is imported",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ready"}, "model_class": {"type": "string"}},
                        },
                        "Ready",
                    ),
                    "503": _json(
                        {
                            "type": "object",
                            "required": ["status", "error"],
                            "properties": {"status": {"const": "not_ready"}, "error": {"type": "string"}},
                        },
                        "Not ready: a generic reason, the import error itself only with Basic "
                        "credentials (and in the server log)",
                    ),
                },
                auth=False,
                errors=False,
                op_id="readyz",
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (behind Basic auth when it is on: labels name projects)",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                errors=False,
                op_id="metrics",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                auth=False,
                errors=False,
                op_id="openapi",
            )
        },
    },
    "components": {
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "LSML_ADMIN_TOKEN (admin routes)"},
        },
        "schemas": {
            **REQUEST_SCHEMAS,
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"const": "UP"},
                    "model_class": {"type": "string"},
                    "catchup": {
                        "type": "object",
                        "description": "Catch-up of annotation events Label Studio never delivered (lsml.catchup); "
                        "only with `?details=true`",
                        "required": ["status", "interval"],
                        "properties": {
                            "status": {"enum": ["on", "off"]},
                            "reason": {"type": "string", "description": "why it is off"},
                            "interval": {"type": "number", "description": "LSML_CATCHUP_INTERVAL (seconds)"},
                        },
                    },
                },
            },
            "Prediction": {
                "type": "object",
                "properties": {
                    "result": {"type": "array", "items": {"type": "object"}},
                    "score": {"type": ["number", "null"]},
                    "model_version": {"type": "string"},
                },
            },
            "PredictResponse": {
                "type": "object",
                "required": ["results"],
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {"anyOf": [_ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]},
                    },
                    "model_version": {"type": "string"},
                },
            },
            "JobAccepted": {
                "type": "object",
                "required": ["job"],
                "properties": {
                    "job": {"type": "string"},
                    "status": {"type": "string"},
                    "project": {"type": "string"},
                    "action": {"type": "string"},
                },
            },
            "JobStatus": {
                "type": "object",
                "required": ["job", "status"],
                "properties": {
                    "job": {"type": "string"},
                    "status": {"enum": ["queued", "started", "finished", "failed"]},
                    "job_status": {
                        "enum": ["queued", "started", "finished", "failed"],
                        "description": "Same as status (the key Label Studio reads)",
                    },
                    "error": {"type": ["string", "null"]},
                    "model_version": {"type": ["string", "null"]},
                    "kind": {"const": "prelabel", "description": "only on pre-labelling jobs"},
                    "progress": {
                        "type": ["object", "null"],
                        "description": "pre-labelling: done, total, rate "
                        "(tasks/s), eta (s), predicted, written, skipped, resumed_after, read_seconds, "
                        "predict_seconds, write_seconds",
                    },
                    "attempt": {
                        "type": ["integer", "null"],
                        "description": "pre-labelling on RQ: the run that is (or was last) going; a job whose worker "
                        "was killed runs again, up to LSML_PRELABEL_ATTEMPTS, resuming from its checkpoint",
                    },
                },
            },
            "Versions": {
                "type": "object",
                "required": ["versions", "model_version"],
                "properties": {
                    "project": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "details": {"type": "array", "items": {"type": "object"}},
                    "projects": {"type": "object", "description": "project -> version names (no project given)"},
                    "pinned": {
                        "type": ["string", "object", "null"],
                        "description": "the pinned version (null: none); without a project, project -> pinned",
                    },
                    "current": {"type": ["string", "null"]},
                    "latest": {"type": ["string", "null"]},
                    "model_version": {"type": "string"},
                    "acceptance": {
                        "type": "object",
                        "description": "with a project: model version -> how much of its predictions annotators "
                        "kept (annotations, predicted, kept, changed, deleted, added, accepted_share; "
                        "docs/versions.md)",
                        "additionalProperties": _ref("Acceptance"),
                    },
                },
            },
            "Acceptance": {
                "type": "object",
                "properties": {
                    "annotations": {"type": "integer"},
                    "predicted": {"type": "integer"},
                    "kept": {"type": "integer"},
                    "changed": {"type": "integer"},
                    "deleted": {"type": "integer"},
                    "added": {"type": "integer"},
                    "accepted_share": {"type": ["number", "null"]},
                },
            },
            "PrelabelAccepted": {
                "type": "object",
                "required": ["job", "created"],
                "properties": {
                    "job": {"type": "string"},
                    "status": {"enum": ["queued", "active"]},
                    "project": {"type": "string"},
                    "created": {"type": "boolean"},
                },
            },
            "VersionReport": {
                "type": "object",
                "required": ["project", "versions", "current", "pinned"],
                "properties": {
                    "project": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "details": {"type": "array", "items": {"type": "object"}},
                    "current": {"type": ["string", "null"]},
                    "pinned": {"type": ["string", "null"]},
                    "latest": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def document(basic_auth: bool) -> dict:
    """SPEC as this server runs: with Basic auth on, the Label Studio-facing operations *require* it
    (`security: [{"basicAuth": []}]`), so a client or fuzzer knows a request without it gets 401."""
    if not basic_auth:
        return SPEC
    return _AUTH_REQUIRED


def _require_auth(spec: dict) -> dict:
    import copy

    spec = copy.deepcopy(spec)
    for item in spec["paths"].values():
        for op in item.values():
            if op.get("security") == _AUTH:
                op["security"] = [{"basicAuth": []}]
    return spec


_AUTH_REQUIRED = _require_auth(SPEC)
