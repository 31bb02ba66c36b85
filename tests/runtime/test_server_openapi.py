import re

import jsonschema
import pytest

from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit

# The structural core of an OpenAPI 3.1 document (what tools need to read it).
OPENAPI_31_CORE = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "properties": {"title": {"type": "string"}, "version": {"type": "string"}},
        },
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {
                    "enum": [
                        "get",
                        "post",
                        "put",
                        "delete",
                        "patch",
                        "head",
                        "options",
                        "summary",
                        "description",
                        "parameters",
                    ]
                },
                "additionalProperties": {
                    "type": "object",
                    "required": ["responses"],
                    "properties": {
                        "operationId": {"type": "string"},
                        "responses": {
                            "type": "object",
                            "minProperties": 1,
                            "propertyNames": {"pattern": r"^([1-5]\d\d|default)$"},
                            "additionalProperties": {"type": "object", "required": ["description"]},
                        },
                        "requestBody": {"type": "object", "required": ["content"]},
                        "parameters": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name", "in"],
                                "properties": {"in": {"enum": ["query", "header", "path", "cookie"]}},
                            },
                        },
                        "security": {"type": "array"},
                    },
                },
            },
        },
        "components": {"type": "object"},
    },
}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_document_is_structurally_valid(serve):
    _, c = serve(CountingModel)
    spec = c.get("/openapi.json").json
    jsonschema.validate(spec, OPENAPI_31_CORE)
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for ref in _refs(spec):
        m = re.fullmatch(r"#/components/schemas/(\w+)", ref)
        assert m and m.group(1) in spec["components"]["schemas"], ref
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_openapi_covers_every_route_and_method(serve):
    app, c = serve(CountingModel)
    spec = c.get("/openapi.json").json
    for rule in app.url_map.iter_rules():
        assert rule.rule in spec["paths"], f"{rule.rule} missing from /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][rule.rule], f"{method} {rule.rule} missing"
    assert set(spec["paths"]) == {r.rule for r in app.url_map.iter_rules()}


def test_openapi_says_whether_auth_is_required(serve):
    """With Basic auth on, the Label Studio-facing operations require it (a fuzzer then checks the 401s);
    probes stay open either way, and /metrics follows the auth setting."""
    _, open_client = serve(CountingModel)
    _, auth_client = serve(CountingModel, basic_auth_user="ls", basic_auth_pass="pw")
    without, with_auth = open_client.get("/openapi.json").json, auth_client.get("/openapi.json").json
    assert without["paths"]["/predict"]["post"]["security"] == [{"basicAuth": []}, {}]
    assert with_auth["paths"]["/predict"]["post"]["security"] == [{"basicAuth": []}]
    assert with_auth["paths"]["/metrics"]["get"]["security"] == [{"basicAuth": []}]
    assert with_auth["paths"]["/readyz"]["get"]["security"] == []
    assert "401" in with_auth["paths"]["/setup"]["post"]["responses"]
