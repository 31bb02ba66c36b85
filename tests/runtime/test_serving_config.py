"""One serving config everywhere (issue 13): the image's CMD, the compose file, the operator's server container
and `label-studio-ml start` run the same gunicorn command, and that config resolves to the same serving
settings under each one's environment; only the documented knobs differ.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lsml.launcher import StartOptions, server_argv, serving_env
from lsml.server.gunicorn_conf import SERVE_COMMAND
from lsml.settings import ServingSettings
from lsml_operator.builders import desired_children
from lsml_operator.builders.server_deployment import SERVE_COMMAND as OPERATOR_SERVE_COMMAND
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import stop_process

REPO = Path(__file__).resolve().parents[2]
KNOBS = {"HOST", "PORT", "WORKERS", "THREADS", "LSML_CLIENT_TIMEOUT", "LOG_LEVEL", "LSML_BACKEND_DIR"}
SHARED = ("worker_class", "timeout", "graceful_timeout", "keepalive", "sendfile", "errorlog", "control_socket_disable")


def dockerfile() -> tuple[list[str], dict[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    runtime = text.split("AS runtime\n", 1)[1]
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", runtime, flags=re.M)[-1])
    env_block = re.search(r"^ENV ((?:.*\\\n)*.*)$", runtime, flags=re.M).group(1)
    env = dict(re.findall(r"(\w+)=(\S+)", env_block.replace("\\\n", " ")))
    return cmd, env


def compose(path: Path) -> tuple[list[str], dict[str, str]]:
    server = yaml.safe_load(path.read_text().replace("{{NAME}}", "b"))["services"]["server"]
    return server["command"], {k: str(v) for k, v in server["environment"].items()}


def operator() -> tuple[list[str], dict[str, str]]:
    deployment = next(
        c
        for c in desired_children(with_identity(example("mlbackend-minimal.yaml")))
        if c["kind"] == "Deployment" and c["metadata"]["name"].endswith("-server")
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return container["command"], {e["name"]: e["value"] for e in container["env"] if "value" in e}


def start(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    argv = server_argv()
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    return ["gunicorn", *argv[3:]], serving_env(StartOptions(tmp_path, host="127.0.0.1", port=9191), 2, "INFO")


def resolved(env: dict[str, str]) -> dict:
    """gunicorn's own view of lsml's config file under `env` (a fresh interpreter: the config reads env at import)."""
    code = (
        "import json; from gunicorn.config import Config; from gunicorn.app.base import Application\n"
        "class A(Application):\n"
        "    def init(self, *a): return {}\n"
        "    def load(self): pass\n"
        "app = A(); app.cfg = Config(); app.load_config_from_module_name_or_filename("
        "'python:lsml.server.gunicorn_conf')\n"
        "print(json.dumps({k: str(app.cfg.settings[k].get()) for k in app.cfg.settings}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_four_deployments_run_the_same_command_and_resolve_the_same_settings(tmp_path):
    deployments = {
        "Dockerfile": dockerfile(),
        "compose template": compose(REPO / "runtime" / "lsml" / "templates" / "docker-compose.yml.tmpl"),
        "operator": operator(),
        "start": start(tmp_path),
    }
    for example_dir in sorted((REPO / "examples").glob("*/docker-compose.yml")):
        deployments[str(example_dir.relative_to(REPO))] = compose(example_dir)
    assert OPERATOR_SERVE_COMMAND == SERVE_COMMAND
    settings = {}
    for name, (command, env) in deployments.items():
        assert command == SERVE_COMMAND, f"{name} runs {command}"
        knobs = {k: v for k, v in env.items() if k in KNOBS}
        # the image leaves WORKERS to ServingSettings: 2 with REDIS_URL, else 1 (embedded training)
        required = {"PORT", "THREADS"} if name == "Dockerfile" else {"PORT", "WORKERS", "THREADS"}
        assert required <= set(knobs) or name == "start", f"{name} sets {sorted(knobs)}"
        settings[name] = resolved({k: v for k, v in knobs.items() if k != "LSML_BACKEND_DIR"})  # /app is not here
        assert settings[name]["bind"] == str([f"{knobs.get('HOST', '0.0.0.0')}:{knobs.get('PORT', 9090)}"])
        assert settings[name]["workers"] == knobs.get("WORKERS", "1")
        assert settings[name]["threads"] == knobs.get("THREADS", "8")
    first = next(iter(settings.values()))
    assert first["worker_class"] == "lsml.server.gunicorn_worker.ThreadWorker"
    for name, resolved_settings in settings.items():
        assert {k: resolved_settings[k] for k in SHARED} == {k: first[k] for k in SHARED}, name


def test_workers_default_to_one_without_redis_and_two_with_it():
    """Each gunicorn worker would run its own embedded training queue: one, unless training goes to RQ."""
    assert ServingSettings.from_env({}).workers == 1
    assert ServingSettings.from_env({"REDIS_URL": "redis://r:6379/0"}).workers == 2
    assert ServingSettings.from_env({"REDIS_URL": "redis://r:6379/0", "WORKERS": "3"}).workers == 3


def test_the_operator_port_is_the_container_port():
    _, env = operator()
    deployment = next(
        c for c in desired_children(with_identity(example("mlbackend-minimal.yaml"))) if c["kind"] == "Deployment"
    )
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert env["PORT"] == str(port) and env["LSML_BACKEND_DIR"] == "/app"


@pytest.mark.parametrize(
    "name, value", [("WORKERS", "two"), ("THREADS", "0"), ("PORT", "-1"), ("LSML_CLIENT_TIMEOUT", "nan")]
)
def test_a_bad_knob_is_named(name, value):
    with pytest.raises(ValueError, match=name):
        ServingSettings.from_env({name: value})


def test_gunicorn_refuses_a_bad_knob_with_its_name_and_a_nonzero_exit(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", *SERVE_COMMAND, "--check-config"],
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WORKERS": "two", "LSML_BACKEND_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "WORKERS must be an integer" in out.stdout + out.stderr


def test_a_second_server_on_a_taken_port_is_refused_at_once_and_says_why(tmp_path):
    (tmp_path / "_wsgi.py").write_text(
        "def app(environ, start_response):\n    start_response('200 OK', []); return [b'first']\n"
    )
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "LSML_BACKEND_DIR": str(tmp_path),
    }
    first = subprocess.Popen(
        [sys.executable, "-m", *SERVE_COMMAND],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        second = subprocess.run(
            [sys.executable, "-m", *SERVE_COMMAND], cwd=tmp_path, env=env, timeout=60, capture_output=True, text=True
        )
        assert second.returncode == 1
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert first.poll() is None
    finally:
        stop_process(first, 30)
