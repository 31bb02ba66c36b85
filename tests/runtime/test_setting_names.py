"""One name and one default per setting, wherever the process runs (issue 23 item 2).

`lsml.settings` declares every variable (`setting(default, NAME, description)`); `lsml.setting_names`
spells the names for the modules that read or write them outside the settings (and for the operator,
which may import nothing else of the runtime's settings). These tests hold the two together both ways,
and hold every place that writes a serving knob again (the image, the compose template and examples, the
operator's server container) to the settings' default.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

import lsml.setting_names as names
from lsml.settings import OTHER_VARIABLES, ServingSettings, Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def declared() -> set[str]:
    fields = [*dataclasses.fields(Settings), *dataclasses.fields(ServingSettings)]
    return {f.metadata["env"] for f in fields if f.metadata.get("env")} | set(OTHER_VARIABLES)


def spelled() -> dict[str, str]:
    return {k: v for k, v in vars(names).items() if k.isupper() and not k.startswith("DEFAULT_")}


def test_every_declared_setting_has_its_name_and_every_name_is_declared():
    assert all(key == value for key, value in spelled().items()), "a constant spells another variable"
    assert set(spelled().values()) == declared()


def test_the_names_module_imports_nothing():
    """The operator imports it: it must not pull the runtime's settings (or anything) along."""
    tree = ast.parse(Path(names.__file__).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imports)


def test_from_env_of_an_empty_environment_gives_the_declared_defaults():
    """`from_env` reads each field from its declaration: an empty environment gives what `setting(...)` declares."""
    read = Settings.from_env(env={}, backend_dir=REPO)
    for f in dataclasses.fields(Settings):
        if f.metadata.get("shown") is None:
            assert getattr(read, f.name) == f.default, f.metadata["env"]
    serving = ServingSettings.from_env({})
    for f in dataclasses.fields(ServingSettings):
        if f.metadata.get("shown") is None:
            assert getattr(serving, f.name) == f.default, f.metadata["env"]


def test_the_serving_defaults_the_deployments_spell_out_are_the_settings_defaults():
    assert names.DEFAULT_PORT == ServingSettings().port
    assert names.DEFAULT_THREADS == ServingSettings().threads


def dockerfile_env(text: str) -> dict[str, str]:
    """The runtime stage's `ENV A=1 \\ B=2` block."""
    runtime = text.split("AS runtime", 1)[1]
    block = re.search(r"^ENV (.*?)(?<!\\)\n", runtime, re.S | re.M).group(1)
    return dict(re.findall(r"(\w+)=(\S+)", block))


def test_the_image_uses_the_settings_defaults():
    env = dockerfile_env((REPO / "Dockerfile").read_text())
    assert int(env["PORT"]) == ServingSettings().port
    assert int(env["THREADS"]) == ServingSettings().threads
    assert "WORKERS" not in env  # unset: the settings decide from REDIS_URL


@pytest.mark.parametrize(
    "path",
    [
        "runtime/lsml/templates/docker-compose.yml.tmpl",
        "examples/text_classifier/docker-compose.yml",
        "examples/image_classifier/docker-compose.yml",
    ],
)
def test_the_compose_files_use_the_settings_defaults(path):
    compose = yaml.safe_load((REPO / path).read_text().replace("{{NAME}}", "backend"))
    env = compose["services"]["server"]["environment"]
    with_redis = ServingSettings.from_env({"REDIS_URL": env["REDIS_URL"]})
    assert int(env["PORT"]) == with_redis.port
    assert int(env["THREADS"]) == with_redis.threads
    assert int(env["WORKERS"]) == with_redis.workers


def test_the_operator_uses_the_settings_defaults():
    from lsml_operator.builders import common, server_deployment

    env = {e["name"]: e["value"] for e in server_deployment.serving_env(common.DEFAULT_PORT)}
    assert int(env[names.PORT]) == ServingSettings().port
    assert int(env[names.THREADS]) == ServingSettings().threads
    # WORKERS is the operator's own choice, documented in serving_env: one process per pod, pods scale out
    assert env[names.WORKERS] == "1"


#: The modules that may spell a variable's name as a string: the declarations and the names module.
DECLARING = {"runtime/lsml/settings.py", "runtime/lsml/setting_names.py"}


def test_no_other_module_of_the_runtime_or_the_operator_spells_a_name_again():
    """A name written as a string elsewhere drifts from the declaration: modules use `lsml.setting_names`."""
    found = []
    for root in ("runtime/lsml", "operator/lsml_operator"):
        for path in sorted((REPO / root).rglob("*.py")):
            relative = str(path.relative_to(REPO))
            if relative in DECLARING:
                continue
            tree = ast.parse(path.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
            }
            found += [
                f"{relative}:{node.lineno}: {node.value}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and node.value in declared() and id(node) not in docstrings
            ]
    assert found == []
