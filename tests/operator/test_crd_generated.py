"""The committed CRD (both copies) is what hack/crd/generate.py writes from the typed spec (lsml_operator.crd).

The typed model is the one source of the schema; this test fails when someone edits the YAML by hand or
changes the model without regenerating (`hack/crd/generate.py`; hack/lint runs it with --check).
"""

from __future__ import annotations

import importlib.util

import jsonschema
import pydantic
import pytest
import yaml

from lsml_operator.crd.document import crd_document, render
from lsml_operator.crd.model import KubeModel, MLBackend, MLBackendSpec
from lsml_operator.crd.schema import model_schema
from tests.fixtures.mlbackend import CHART, CRD_PATH, EXAMPLES, REPO, crd_schema, load_docs
from tests.fixtures.mlbackend import structural_to_jsonschema as _jsonschema


def test_generated_crd_equals_committed_crd():
    committed = yaml.safe_load(CRD_PATH.read_text())
    generated = crd_document()
    assert generated == committed


def test_committed_files_are_the_rendered_text():
    assert CRD_PATH.read_text() == render()
    assert (CHART / "crds" / "mlbackend.yaml").read_text() == render()


def _generator():
    """hack/crd/generate.py as a module (hack/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("crd_generate", REPO / "hack" / "crd" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_check_fails_on_a_stale_copy_and_writing_repairs_it(tmp_path, monkeypatch, capsys):
    gen = _generator()
    current, stale = tmp_path / "current.yaml", tmp_path / "stale.yaml"
    current.write_text(render())
    stale.write_text(render().replace("Fewest server pods.", "Fewest pods."))  # a hand edit
    monkeypatch.setattr(gen, "TARGETS", [current, stale])
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "stale.yaml is not what hack/crd/generate.py writes" in err and "current.yaml" not in err
    removed = [line[1:].strip() for line in err.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == ["description: Fewest pods."]  # the diff says what differs
    assert gen.main([]) == 0
    assert stale.read_text() == render()
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("name", ["mlbackend.yaml", "mlbackend-minimal.yaml", "mlbackend-full.yaml"])
def test_examples_parse_through_the_model(name):
    docs = [d for d in load_docs(EXAMPLES / name) if d["kind"] == "MLBackend"]
    assert docs
    for doc in docs:
        mlb = MLBackend.model_validate(doc)
        assert mlb.spec.image == doc["spec"]["image"]


def test_model_fills_the_crds_defaults():
    spec = MLBackendSpec.model_validate({"image": "img"})
    schema = crd_schema()["properties"]["spec"]["properties"]
    assert spec.image_pull_policy == schema["imagePullPolicy"]["default"]
    assert spec.server.replicas == schema["server"]["properties"]["replicas"]["default"]
    assert spec.service.type == schema["service"]["properties"]["type"]["default"]
    assert spec.worker.enabled is schema["worker"]["properties"]["enabled"]["default"] is False


@pytest.mark.parametrize(
    "bad",
    [
        {"image": ""},
        {"image": "i", "model": {"scoreStrategy": "random"}},
        {"image": "i", "server": {"containerPort": 70000}},
        {"image": "i", "model": {"modelDir": "relative"}},
        {"image": "i", "labelStudio": {"url": "ftp://x", "apiTokenSecretRef": {"name": "t"}, "projects": [1]}},
        {"image": "i", "labelStudio": {"url": "http://x", "apiTokenSecretRef": {"name": "t"}, "projects": []}},
    ],
)
def test_model_rejects_what_the_schema_rejects(bad):
    schema = _jsonschema(crd_schema()["properties"]["spec"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(pydantic.ValidationError):
        MLBackendSpec.model_validate(bad)


def test_a_union_without_a_declared_schema_is_refused():
    class Ambiguous(KubeModel):
        value: int | str

    with pytest.raises(TypeError, match="union needs Kube"):
        model_schema(Ambiguous)
