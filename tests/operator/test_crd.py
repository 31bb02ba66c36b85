"""CRD shape tests without a cluster: subresources, printer columns, examples valid against the schema.

The API server's own verdict (CEL rules, defaults) is tested in test_cluster_crd.py.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest

from lsml_operator.builders.pod_annotations import RESERVED_POD_ANNOTATION, is_reserved
from tests.fixtures.mlbackend import (
    CHART,
    CRD_PATH,
    EXAMPLES,
    FREE_POD_ANNOTATIONS,
    RESERVED_POD_ANNOTATIONS,
    crd,
    crd_schema,
    load_docs,
)
from tests.fixtures.mlbackend import structural_to_jsonschema as _jsonschema

pytestmark = pytest.mark.unit


def test_chart_crd_is_identical_to_crds_dir():
    assert (CHART / "crds" / "mlbackend.yaml").read_bytes() == CRD_PATH.read_bytes()


def test_scale_subresource_and_printer_columns():
    v = crd()["spec"]["versions"][0]
    assert v["subresources"]["status"] == {}
    assert v["subresources"]["scale"] == {
        "specReplicasPath": ".spec.server.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    cols = [c["name"].upper() for c in v["additionalPrinterColumns"]]
    assert cols == ["READY", "REASON", "REPLICAS", "URL", "MODEL VERSION", "SCORE", "PINNED", "AGE", "MESSAGE"]
    by_name = {c["name"]: c for c in v["additionalPrinterColumns"]}
    # why a backend is not ready, in `kubectl get mlb`; the long message only with -o wide
    assert by_name["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert by_name["Message"]["priority"] == 1
    names = crd()["spec"]["names"]
    assert names["shortNames"] == ["mlb"] and names["kind"] == "MLBackend"
    assert crd()["spec"]["scope"] == "Namespaced"


@pytest.mark.parametrize("name", ["mlbackend.yaml", "mlbackend-minimal.yaml", "mlbackend-full.yaml"])
def test_examples_validate_against_schema(name):
    schema = _jsonschema(crd_schema())
    docs = [d for d in load_docs(EXAMPLES / name) if d["kind"] == "MLBackend"]
    assert docs, f"{name} has no MLBackend"
    for doc in docs:
        jsonschema.validate(doc, schema)


def test_schema_rejects_unknown_score_strategy_and_bad_quantities():
    schema = _jsonschema(crd_schema())
    doc = copy.deepcopy(load_docs(EXAMPLES / "mlbackend-minimal.yaml")[0])
    doc["spec"]["model"] = {"scoreStrategy": "random"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    doc["spec"]["model"] = {}
    doc["spec"]["server"] = {"resources": {"limits": {"memory": "lots"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_cross_field_rules_are_cel_validations():
    s = crd_schema()["properties"]["spec"]
    rules = [r["rule"] for r in s["x-kubernetes-validations"]]
    assert any("has(self.redis)" in r for r in rules)
    p = s["properties"]
    assert p["redis"]["x-kubernetes-validations"] and p["storage"]["x-kubernetes-validations"]
    assert p["hpa"]["x-kubernetes-validations"] and p["basicAuth"]["x-kubernetes-validations"]
    assert all(r.get("message") for r in s["x-kubernetes-validations"] + p["redis"]["x-kubernetes-validations"])


def test_schema_takes_pinned_versions_and_prelabel_on_publish():
    schema = _jsonschema(crd_schema())
    doc = copy.deepcopy(load_docs(EXAMPLES / "mlbackend-minimal.yaml")[0])
    doc["spec"]["model"] = {"pinnedVersions": {"*": "v3", "5": "2"}, "prelabelOnPublish": True}
    jsonschema.validate(doc, schema)
    doc["spec"]["model"] = {"pinnedVersions": {"5": "latest"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    model = crd_schema()["properties"]["spec"]["properties"]["model"]["properties"]
    assert "k.matches('^[0-9]+$')" in model["pinnedVersions"]["x-kubernetes-validations"][0]["rule"]


def test_schema_takes_a_quality_gate_and_refuses_a_bad_one():
    schema = _jsonschema(crd_schema())
    doc = copy.deepcopy(load_docs(EXAMPLES / "mlbackend-minimal.yaml")[0])
    doc["spec"]["model"] = {"qualityGate": {"metric": "accuracy", "tolerance": 0.02}}
    jsonschema.validate(doc, schema)
    for bad in ({"tolerance": 0.1}, {"metric": "acc uracy"}, {"metric": "accuracy", "tolerance": 2}):
        doc["spec"]["model"] = {"qualityGate": bad}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)


def test_pod_annotation_rule_is_the_builders_pattern():
    """The CRD refuses exactly what the builders drop: one pattern, embedded verbatim in the CEL rule."""
    ann = crd_schema()["properties"]["spec"]["properties"]["server"]["properties"]["podAnnotations"]
    (rule,) = ann["x-kubernetes-validations"]
    assert rule["rule"] == f"self.all(k, !k.matches('{RESERVED_POD_ANNOTATION}'))"
    assert f"self.filter(k, k.matches('{RESERVED_POD_ANNOTATION}'))" in rule["messageExpression"]
    assert "lsml.dev/*" in rule["message"] and "AppArmor" in rule["message"]
    assert all(is_reserved(k) for k in RESERVED_POD_ANNOTATIONS)
    assert not any(is_reserved(k) for k in FREE_POD_ANNOTATIONS)


@pytest.mark.parametrize(
    "path,bad",
    [
        (("labelStudio", "apiTokenSecretRef", "name"), "../../kube-system/secrets/x"),
        (("basicAuth", "secretName"), "../other/secrets/x"),
        (("redis", "external", "urlSecretRef", "name"), "x/../y"),
        (("model", "configMapName"), "UPPER"),
        (("storage", "existingClaim"), "a b"),
        (("serviceAccountName",), "."),
    ],
)
def test_names_the_operator_reads_or_mounts_must_be_object_names(path, bad):
    """A Secret or ConfigMap name goes into an API path with the operator's rights: `../` there would name an
    object of another namespace (urllib3 resolves dot segments), so the schema takes object names only."""
    schema = _jsonschema(crd_schema())
    doc = copy.deepcopy(load_docs(EXAMPLES / "mlbackend-minimal.yaml")[0])
    doc["spec"]["labelStudio"] = {"url": "http://ls:8080", "apiTokenSecretRef": {"name": "token"}, "projects": [1]}
    doc["spec"]["basicAuth"] = {"secretName": "auth", "usernameKey": "u", "passwordKey": "p"}
    doc["spec"]["redis"] = {"external": {"urlSecretRef": {"name": "redis-url"}}}
    doc["spec"]["model"] = {"configMapName": "model-env.v2"}
    doc["spec"]["storage"] = {"existingClaim": "models"}
    doc["spec"]["serviceAccountName"] = "trainer"
    jsonschema.validate(doc, schema)  # names that are names pass
    *parents, field = path
    node = doc["spec"]
    for part in parents:
        node = node[part]
    node[field] = bad
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(doc, schema)
