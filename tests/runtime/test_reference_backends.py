"""Backend directories written for the reference SDK (HumanSignal/label-studio-ml-backend), served by lsml.

Real gunicorn processes and real HTTP: `label-studio-ml start DIR`, and the reference examples' own
`gunicorn ... _wsgi:app` command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lsml.server.gunicorn_conf import SERVE_COMMAND
from tests.fixtures.label_studio import EXAMPLES_DIR, SENTIMENT_CONFIG
from tests.fixtures.polling import wait_http
from tests.fixtures.ports import free_port
from tests.fixtures.processes import stop_process
from tests.fixtures.reference_sdk import EVERY_APPLE, interactive_predict, reference_example, spans

# What every reference `_wsgi.py` runs at import (label_studio_ml/default_configs/_wsgi.py.tmpl, the examples).
REFERENCE_LOGGING = """import os
import logging.config

logging.config.dictConfig({
  "version": 1,
  "disable_existing_loggers": False,
  "formatters": {"standard": {"format": "[%(asctime)s] [%(levelname)s] [%(name)s::%(funcName)s::%(lineno)d] %(message)s"}},
  "handlers": {"console": {"class": "logging.StreamHandler", "level": os.getenv('LOG_LEVEL'),
                           "stream": "ext://sys.stdout", "formatter": "standard"}},
  "root": {"level": os.getenv('LOG_LEVEL'), "handlers": ["console"], "propagate": True}
})
"""


def predict(url: str, text: str = "a lovely film") -> requests.Response:
    body = {"tasks": [{"id": 1, "data": {"text": text}}], "project": "1.1", "label_config": SENTIMENT_CONFIG}
    return requests.post(f"{url}/predict", json=body, timeout=60)


@pytest.mark.parametrize("log_level", ["", "debug"], ids=["unset", "lower-case"])
def test_a_wsgi_py_configuring_logging_at_import_boots_under_start(start_ml_backend, tmp_path, log_level):
    """`start` used to hand the workers LOG_LEVEL=info, which dictConfig refuses: no worker booted."""
    source = tmp_path / "text_classifier"
    shutil.copytree(EXAMPLES_DIR / "text_classifier", source, ignore=shutil.ignore_patterns("data", "logs"))
    wsgi = source / "_wsgi.py"
    wsgi.write_text(REFERENCE_LOGGING + wsgi.read_text())
    backend = start_ml_backend(source=source, env={"LOG_LEVEL": log_level})
    answer = predict(backend.url)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1, answer.text  # untrained: no prediction for the task, but served
    server_log = (backend.backend_dir / "logs" / "server.log").read_text()
    assert "Unable to configure handler" not in server_log
    expected = "[DEBUG]" if log_level else "[INFO]"
    assert expected in server_log, server_log[-2000:]  # the example's own console handler, at the level asked


def assert_every_apple_found(answer: requests.Response) -> None:
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["results"]
    assert spans(prediction) == EVERY_APPLE


def test_lsmls_serving_command_gives_the_workers_a_log_level_dictconfig_accepts(tmp_path):
    """The image and the operator run the serving command with the user's LOG_LEVEL as given; `info` must not
    keep a reference `_wsgi.py` (logging configured at import) from booting."""
    (tmp_path / "_wsgi.py").write_text(
        REFERENCE_LOGGING
        + "def app(environ, start_response):\n"
        + "    start_response('200 OK', []); return [os.environ['LOG_LEVEL'].encode()]\n"
    )
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LSML_BACKEND_DIR": str(tmp_path), "LOG_LEVEL": "info"}
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", *SERVE_COMMAND], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        answer = wait_http(
            f"http://127.0.0.1:{port}/",
            60,
            "gunicorn",
            died=lambda: None if server.poll() is None else f"exit code {server.returncode}: {log.read_text()[-2000:]}",
        )
        assert answer.text == "INFO"
    finally:
        stop_process(server, 30)


def test_start_serves_an_unmodified_reference_example(start_ml_backend):
    """No MODEL constant, `init_app(model_class=...)`, logging configured at import, label-studio-sdk imports."""
    source = reference_example("interactive_substring_matching")
    backend = start_ml_backend(source=source)
    assert (backend.backend_dir / "_wsgi.py").read_bytes() == (source / "_wsgi.py").read_bytes()
    assert_every_apple_found(interactive_predict(backend.url))
    assert requests.get(f"{backend.url}/readyz", timeout=5).json()["model_class"] == "InteractiveSubstringMatching"


def dockerfile_command(dockerfile: Path) -> tuple[str, dict[str, str]]:
    """The shell-form CMD of a reference example's Dockerfile and the variables its ENV sets."""
    text = dockerfile.read_text()
    (command,) = re.findall(r"^CMD (gunicorn .*)$", text, flags=re.M)
    env_block = re.search(r"^ENV ((?:.*\\\n)*.*)$", text, flags=re.M).group(1)
    env = dict(re.findall(r"(\w+)=(\S+)", env_block.replace("\\\n", " ")))
    return command, env


class ReferenceCommand:
    """A backend directory served by the reference Dockerfile's own `gunicorn ... _wsgi:app`, outside Docker."""

    def __init__(self, backend_dir: Path, command: str, env: dict[str, str]) -> None:
        self.backend_dir = backend_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = backend_dir.parent / "gunicorn.log"
        full_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MODEL_DIR", "LOG_LEVEL")}
        full_env.update(env)
        full_env.update(PORT=str(self.port), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        # gunicorn 27 opens a control socket in $HOME/.gunicorn (lsml's config turns it off, this command does
        # not): one per test, not one the user's other servers would fight over
        full_env["HOME"] = str(backend_dir.parent)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                ["sh", "-c", f"exec {command}"],
                cwd=backend_dir,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> requests.Response:
        def died() -> str | None:
            if self.process.poll() is None:
                return None
            return f"exit code {self.process.returncode}; log:\n{self.log.read_text(errors='replace')[-3000:]}"

        return wait_http(f"{self.url}/readyz", timeout, "gunicorn", died=died)

    def stop(self) -> None:
        stop_process(self.process, 30, group=True)


@pytest.fixture
def reference_command(tmp_path):
    """Factory: run a copy of `source` under the interactive example's Dockerfile CMD (gunicorn --preload ...)."""
    started: list[ReferenceCommand] = []
    command, env = dockerfile_command(reference_example("interactive_substring_matching") / "Dockerfile")

    def run(source: Path, **overrides: str) -> ReferenceCommand:
        target = tmp_path / source.name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
        server = ReferenceCommand(target, command, {**env, **overrides})
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def test_the_reference_dockerfiles_gunicorn_command_serves_lsmls_app(reference_command):
    """`gunicorn --preload --bind :$PORT --workers $WORKERS --threads $THREADS --timeout 0 _wsgi:app`, as the
    reference image runs it, with lsml installed instead of label-studio-ml: lsml's app (its /readyz, its
    store and state under MODEL_DIR) in every worker gunicorn forks from the preloaded master."""
    command, env = dockerfile_command(reference_example("interactive_substring_matching") / "Dockerfile")
    assert "--preload" in command and env["WORKERS"] == "1"
    server = reference_command(reference_example("interactive_substring_matching"), WORKERS="2")
    assert server.wait_ready().json()["model_class"] == "InteractiveSubstringMatching"
    for _ in range(4):  # a new connection each time: either worker may answer
        assert_every_apple_found(interactive_predict(server.url))
    versions = requests.get(f"{server.url}/versions", params={"project": "3"}, timeout=10).json()
    assert versions["model_version"] == "InteractiveSubstringMatching-v0.0.1", versions
    # lsml's state under its default MODEL_DIR (the Dockerfile sets none): the label config /predict brought
    assert any((server.backend_dir / "data" / "models").rglob("*.sqlite3")), list(server.backend_dir.rglob("*"))


def test_the_reference_command_serves_a_model_named_by_string_once_preloaded(reference_command):
    """An lsml backend dir (`create_app("model:Class")`) under the same command: the master imports the model
    in a thread while gunicorn forks; every worker must still get the whole class (loader.finish_import)."""
    server = reference_command(EXAMPLES_DIR / "text_classifier", WORKERS="2")
    assert server.wait_ready().json()["model_class"] == "TextClassifier"
    for _ in range(4):
        assert predict(server.url).status_code == 200
