"""The docs' reference pages against the code they are generated from (hack/docs/reference.py).

The pages are generated at build time, so they cannot be stale; what can go wrong is a source without its
description (a setting, a CRD field, a CLI flag, an HTTP field, a metric) or a page that leaves something out.
Each test names what is missing and where to add it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from lsml import settings as runtime_settings
from lsml_operator import settings as operator_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _load_reference():
    spec = importlib.util.spec_from_file_location("lsml_docs_reference", ROOT / "hack" / "docs" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_reference()


# ------------------------------------------------------------------------------------------ environment


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key, default=None):  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _declared(cls: type) -> dict[str, dataclasses.Field]:
    return {f.metadata["env"]: f for f in dataclasses.fields(cls) if "env" in f.metadata}


@pytest.mark.parametrize("cls", [runtime_settings.Settings, runtime_settings.ServingSettings])
def test_every_variable_the_runtime_settings_read_is_declared_with_a_description(cls, tmp_path):
    env = RecordingEnv()
    if cls is runtime_settings.Settings:
        cls.from_env(env, backend_dir=tmp_path)
        env.get("LSML_BACKEND_DIR")  # read only when backend_dir is not given
    else:
        cls.from_env(env)
    declared = _declared(cls)
    everywhere = set(_declared(runtime_settings.Settings)) | set(_declared(runtime_settings.ServingSettings))
    # ServingSettings reads REDIS_URL (Settings declares it) for its default; the reference SDK's names that
    # from_env reads as fallbacks (LABEL_STUDIO_HOST, ...) are described in OTHER_VARIABLES
    undeclared = env.asked - everywhere - set(runtime_settings.OTHER_VARIABLES)
    assert not undeclared, (
        f"{cls.__name__}.from_env reads {sorted(undeclared)} but no field declares it: declare the field with "
        "setting(default, ENV, description) in runtime/lsml/settings.py"
    )
    stale = set(declared) - env.asked
    assert not stale, f"{cls.__name__} declares {sorted(stale)}, which from_env never reads"
    blank = [name for name, f in declared.items() if not f.metadata["doc"].strip()]
    assert not blank, f"settings without a description: {blank}"
    plain = [f.name for f in dataclasses.fields(cls) if "env" not in f.metadata]
    assert not plain, f"{cls.__name__} fields without setting(...): {plain} (add the variable and its description)"


def test_the_runtime_defaults_shown_are_the_defaults_from_env_applies(tmp_path):
    for cls, built in (
        (runtime_settings.Settings, runtime_settings.Settings.from_env({}, backend_dir=tmp_path)),
        (runtime_settings.ServingSettings, runtime_settings.ServingSettings.from_env({})),
    ):
        for f in dataclasses.fields(cls):
            if f.metadata.get("shown") is None:  # `shown` replaces a default computed at run time
                assert getattr(built, f.name) == f.default, (
                    f"{cls.__name__}.{f.name}: from_env's default {getattr(built, f.name)!r} is not the field's "
                    f"{f.default!r}, so the docs would show the wrong one"
                )


def test_every_operator_variable_is_declared_and_reaches_its_field(monkeypatch):
    declared = _declared(operator_settings.OperatorSettings)
    fields = {f.name for f in dataclasses.fields(operator_settings.OperatorSettings)}
    assert {f.name for f in declared.values()} == fields, "OperatorSettings fields without _setting(...)"
    for name, f in declared.items():
        assert f.metadata["doc"].strip(), f"{name} has no description"
        if str(f.type).startswith("dict"):  # a JSON object (LSML_OPERATOR_BACKEND_URLS)
            monkeypatch.setenv(name, '{"ns/a": "http://a.test:9090"}')
            got = getattr(operator_settings.OperatorSettings.from_env(), f.name)
            assert got == {"ns/a": "http://a.test:9090"}, f"{name} does not set OperatorSettings.{f.name}"
            monkeypatch.delenv(name)
            continue
        value = "lsml-test" if f.type in ("str", str) else "7"
        monkeypatch.setenv(name, value)
        got = getattr(operator_settings.OperatorSettings.from_env(), f.name)
        assert str(got).removesuffix(".0") == value, f"{name} does not set OperatorSettings.{f.name}"
        monkeypatch.delenv(name)


# Every way the code reads a variable: os.environ.get("X"), os.environ["X"], env.get("X"), getenv("X"), and the
# settings modules' readers _str(env, "X") / _float("X", ...). Not `env["X"] = ...`: that sets a child's variable.
_READS = re.compile(
    r"""(?:environ|env|getenv)(?:\.get)?\s*[\[(]\s*["']([A-Z][A-Z0-9_]+)["']\s*[\]),](?!\s*=[^=])"""
    r"""|_(?:str|int|float|bool|pins|paths)\(\s*(?:env,\s*)?["']([A-Z][A-Z0-9_]+)["']"""
)


def test_every_variable_read_anywhere_in_the_code_is_in_the_environment_reference():
    documented = {name for rows in reference.settings_variables().values() for name, _, _ in rows}
    read: dict[str, str] = {}
    for path in [*ROOT.glob("runtime/lsml/**/*.py"), *ROOT.glob("operator/lsml_operator/**/*.py")]:
        for match in _READS.finditer(path.read_text()):
            read.setdefault(match.group(1) or match.group(2), str(path.relative_to(ROOT)))
    assert read, "the pattern found no variable at all: it no longer matches how the code reads them"
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, (
        f"read but not in the environment reference: {missing}; declare them with setting(...) or in "
        "OTHER_VARIABLES (runtime/lsml/settings.py, operator/lsml_operator/settings.py)"
    )


def test_the_environment_page_lists_every_variable_with_its_description():
    page = reference.environment()
    for rows in reference.settings_variables().values():
        for name, _default, doc in rows:
            assert f"| `{name}` |" in page
            assert reference.cell(doc) in page


# ------------------------------------------------------------------------------------------ MLBackend CRD


def test_every_mlbackend_field_has_a_description_and_a_row():
    page = reference.mlbackend()
    blank = []
    for field, schema, _parent in reference.crd_fields(reference.crd_schema()):
        if field in reference.ROOT_FIELDS:
            continue
        if not (schema.get("description") or "").strip():
            blank.append(field)
        assert f"| `{field}` |" in page, f"{field} missing from the MLBackend reference"
    assert not blank, (
        f"CRD fields without a description (add description= in operator/lsml_operator/crd/model.py, then run hack/crd/generate.py): {blank}"
    )


def test_the_mlbackend_page_shows_defaults_and_validation_rules():
    page = reference.mlbackend()
    row = next(line for line in page.splitlines() if line.startswith("| `spec.server.replicas` |"))
    assert "`1`" in row and "≥ `0`" in row
    assert "spec.redis: set exactly one of managed: true or external.urlSecretRef" in page  # a CEL rule's message


# ------------------------------------------------------------------------------------------ CLI


def test_every_command_and_flag_has_help_and_a_row():
    page = reference.cli()
    found = list(reference.commands())
    assert {"label-studio-ml start", "label-studio-ml predict", "lsml-operator"} <= {c for c, _, _ in found}
    missing = []
    for command, parser, help_text in found:
        if not help_text.strip():
            missing.append(command)
        assert f"## `{command}`" in page
        for action in reference.options(parser):
            label = ", ".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{command} {label}")
            first = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
            assert f"`{reference.cell(first)}" in page, f"{command} {label} missing from the CLI reference"
    assert not missing, f"commands and flags without help= (their argparse add_argument/add_parser): {missing}"


# ------------------------------------------------------------------------------------------ HTTP API


def test_every_operation_and_request_field_is_described_and_on_the_page():
    spec = reference.openapi()
    page = reference.http_api()
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not op.get("summary", "").strip():
                missing.append(f"{method.upper()} {path}: summary")
            missing += [f"{method.upper()} {path} {s}" for s, r in op["responses"].items() if not r.get("description")]
            missing += [
                f"{method.upper()} {path} ?{p['name']}" for p in op.get("parameters") or [] if not p.get("description")
            ]
            assert f"### {method.upper()} `{path}`" in page
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:  # what clients send: every field says what it is (server/bodies.py)
                name = body["$ref"].rsplit("/", 1)[-1]
                schema = spec["components"]["schemas"][name]
                missing += [
                    f"{name}.{p}" for p, s in (schema.get("properties") or {}).items() if not s.get("description")
                ]
    assert not missing, (
        f"undescribed in /openapi.json (runtime/lsml/server/openapi.py, bodies.py): {sorted(set(missing))}"
    )
    for name in spec["components"]["schemas"]:
        assert f"### {name} {{#{name.lower()}}}" in page


# ------------------------------------------------------------------------------------------ metrics


def test_every_metric_is_documented_and_on_the_page():
    page = reference.metrics()
    collectors = reference.metric_collectors()
    names = {c._name for c in collectors}
    assert {"lsml_http_requests", "lsml_predict_duration_seconds", "lsml_prelabel_tasks_done"} <= names
    for c in collectors:
        assert c._documentation.strip(), f"metric {c._name} has no documentation string"
        assert f"`{c._name}" in page


# ------------------------------------------------------------------------------------------ troubleshooting


def _operator_reasons() -> set[str]:
    """Every condition reason and event reason the operator writes: the reason argument of Check(...),
    Event(...) and Cause(...), `reason = "..."` assignments, and pod_diagnosis' reason constants."""
    found: set[str] = set()
    op = ROOT / "operator" / "lsml_operator"
    files = [op / "status.py", op / "pod_diagnosis.py", *sorted((op / "reconcile").glob("*.py"))]
    for path in files:
        tree = ast.parse(path.read_text())
        constants = {
            t.id: n.value.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                position = {"Check": 1, "Event": 1, "Cause": 0}.get(node.func.id)
                if position is not None and len(node.args) > position:
                    arg = node.args[position]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.add(arg.value)
                    elif isinstance(arg, ast.Name) and arg.id in constants:
                        found.add(constants[arg.id])
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "reason" for t in node.targets):
                found |= {
                    c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
    from lsml_operator import pod_diagnosis, status

    found |= set(pod_diagnosis.PRIORITY) | set(status.CONDITION_ORDER)
    return {r for r in found if re.fullmatch(r"[A-Z][A-Za-z]+", r)}


def test_the_troubleshooting_guide_names_every_condition_and_reason_the_operator_writes():
    reasons = _operator_reasons()
    assert {"ImagePullFailed", "ClaimUnbound", "LabelStudioRefused", "ForeignObject", "RollingOut"} <= reasons
    guide = (ROOT / "docs" / "troubleshooting.md").read_text()
    missing = sorted(r for r in reasons if f"`{r}`" not in guide)
    assert not missing, f"reasons the operator writes that docs/troubleshooting.md does not explain: {missing}"


def test_the_cli_page_never_shows_the_builders_environment(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://builder-secret.example:8080")
    monkeypatch.setenv("LSML_OPERATOR_LIVENESS", "http://builder-secret.example:1/healthz")
    page = reference.cli()
    assert "builder-secret" not in page
    assert "`http://0.0.0.0:8080/healthz`" in page  # the code's own default
