"""The docker-compose.yml `label-studio-ml init` writes, brought up for real (issue 9, item 7).

Debian's docker-compose 1.29 on the session's Docker engine. The compose file stays as users get
it (registry images: the backend built by `build: .`, redis:7.x-alpine); an override file, as a
user would write one, swaps in the images built here without a registry: the scaffolded backend
built on the local runtime image, and Debian's redis-server on the local base.
The scaffold publishes host port 9090 (on loopback): the test needs it free and says so. Its Redis takes
the password `init` wrote to `.env`, which compose reads from the backend directory.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures.label_studio import SENTIMENT_CONFIG
from tests.fixtures.polling import wait_for, wait_http
from tests.images.engine import REPO

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]  # a cold session build: several minutes


EXAMPLE = REPO / "examples" / "text_classifier"
URL = "http://127.0.0.1:9090"
PROJECT = {"id": 1, "title": "compose", "label_config": SENTIMENT_CONFIG}


def annotation(task_id: int, text: str, label: str) -> dict:
    return {
        "action": "ANNOTATION_CREATED",
        "project": PROJECT,
        "task": {"id": task_id, "data": {"text": text}},
        "annotation": {
            "id": 100 + task_id,
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        },
    }


def setup_version() -> str:
    r = requests.post(URL + "/setup", json={"project": "1.1700000000", "schema": SENTIMENT_CONFIG}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def predict_one() -> dict:
    r = requests.post(
        URL + "/predict",
        json={
            "tasks": [{"id": 9, "data": {"text": "a lovely day"}}],
            "project": "1.1700000000",
            "label_config": SENTIMENT_CONFIG,
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["results"][0]


def port_9090_is_free() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as docker-proxy does: TIME_WAIT is no owner
        try:
            sock.bind(("0.0.0.0", 9090))
        except OSError as exc:
            pytest.fail(
                f"host port 9090 is taken ({exc}); the scaffold's compose file publishes 127.0.0.1:9090, "
                "so this test needs it: stop what listens there (`ss -ltnp 'sport = :9090'`)"
            )


def test_the_scaffolded_compose_stack_trains_from_webhooks_and_comes_down_clean(images, tmp_path):
    backend = tmp_path / "sentiment"
    init = subprocess.run(
        [
            str(Path(sys.executable).parent / "label-studio-ml"),
            "init",
            str(backend),
            "--script",
            str(EXAMPLE / "model.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    compose = yaml.safe_load((backend / "docker-compose.yml").read_text())
    assert compose["services"]["redis"]["image"].startswith("redis:"), "users get the registry's Redis"
    for path in [backend, *backend.rglob("*")]:  # the image's uid 10001 reads /app
        path.chmod(0o755 if path.is_dir() else 0o644)

    # the scaffold's own directory, built like examples/text_classifier (same requirements) but from the
    # wheelhouse: the scaffold's single-stage Dockerfile would need a package index for its pip install
    project = f"lsmltest{uuid.uuid4().hex[:8]}"
    image = f"lsml-test/{project}:latest"
    images.docker(
        "build",
        "--force-rm",
        "--network",
        "none",
        "--file",
        str(EXAMPLE / "Dockerfile"),
        "--tag",
        image,
        "--build-arg",
        f"LSML_IMAGE={images.refs['runtime']}",
        "--build-arg",
        f"BUILD_IMAGE={images.refs['runtime_build']}",
        str(backend),
        timeout=600,
    )
    override = backend / "docker-compose.override.yml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "server": {"image": image},
                    "worker": {"image": image},
                    "redis": {"image": images.refs["redis"]},
                }
            }
        )
    )

    def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "docker-compose",
                "--project-name",
                project,
                "--file",
                "docker-compose.yml",
                "--file",
                override.name,
                *args,
            ],
            cwd=backend,
            env=images.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    port_9090_is_free()
    try:
        up = compose("up", "--detach", "--no-build")
        assert up.returncode == 0, up.stdout + up.stderr
        assert wait_http(URL + "/health", 120, "the compose server").json()["model_class"] == "TextClassifier"
        initial = setup_version()

        for task_id, text, label in [
            (1, "what a lovely sunny day", "Positive"),
            (2, "awful, rainy and cold", "Negative"),
            (3, "lovely people, lovely food", "Positive"),
        ]:
            r = requests.post(URL + "/webhook", json=annotation(task_id, text, label), timeout=10)
            assert r.status_code in (200, 201), r.text

        # the first event trains on one label (a version that abstains); later ones fold into the next fit
        predicted = wait_for(
            predict_one,
            120,
            1,
            what="a trained version after the webhooks",
            until=lambda prediction: bool(prediction) and bool(prediction["result"]),  # [] while it abstains
            diagnose=lambda: compose("logs").stdout[-4000:],
        )
        version = predicted["model_version"]
        assert version != initial
        # The server has 2 gunicorn workers: the one that answered /predict has swapped v1 in, the other swaps it
        # in within LSML_RELOAD_INTERVAL plus a model load, and its /setup answers the version it holds until then
        # (one CI run saw 0.0.1 right after the first worker's v1). What the product promises is that interval.
        wait_for(
            lambda: {setup_version() for _ in range(10)},  # ten fresh connections: both processes answer
            30,
            0.2,
            what=f"every server process's /setup answering {version}",
            until=lambda answered: answered == {version},
        )
        versions = requests.get(URL + "/versions", params={"project": "1"}, timeout=10).json()
        assert version in versions["versions"] and versions["model_version"] == version, versions
        assert predicted["result"][0]["value"]["choices"] == ["Positive"], predicted

        worker_logs = compose("logs", "--no-color", "worker").stdout
        assert f"published {version}" in worker_logs, f"the fit runs in the worker:\n{worker_logs[-4000:]}"
        logs = compose("logs", "--no-color").stdout
        assert "[ERROR]" not in logs and "Traceback" not in logs, logs[-4000:]
    finally:
        down = compose("down", "--volumes", "--remove-orphans")
        images.docker("rmi", image, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    label = f"label=com.docker.compose.project={project}"
    assert images.docker("ps", "--all", "--quiet", "--filter", label).stdout.strip() == "", "containers left"
    assert images.docker("volume", "ls", "--quiet", "--filter", label).stdout.strip() == "", "volumes left"
    assert images.docker("network", "ls", "--quiet", "--filter", label).stdout.strip() == "", "networks left"
