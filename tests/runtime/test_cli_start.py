"""`label-studio-ml start` serving examples/text_classifier under real gunicorn."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lsml.store import LocalModelStore
from tests.fixtures.label_studio import SENTIMENT_CONFIG as CONFIG
from tests.fixtures.polling import wait_for, wait_http
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import stop_process

CLI = str(Path(sys.executable).parent / "label-studio-ml")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text_classifier"
ROWS = [
    ("great movie", "Positive"),
    ("awful plot", "Negative"),
    ("good fun and lovely", "Positive"),
    ("terrible and boring", "Negative"),
    ("wonderful acting", "Positive"),
    ("bad bad bad", "Negative"),
]


class Started:
    def __init__(self, backend: Path, cwd: Path, *extra: str, env: dict | None = None, new_session: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.pop("REDIS_URL", None)
        full_env.pop("MODEL_DIR", None)
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [CLI, "start", str(backend), "--port", str(self.port), "--host", "127.0.0.1", *extra],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=new_session,
        )
        self.backend = backend
        try:
            wait_for_port(self.port, timeout=120)
        except BaseException:  # pytest.fail's exception is a BaseException
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until /readyz answers 200: the model class is imported, so measurements start settled."""
        wait_http(
            self.url + "/readyz",
            timeout,
            "the server",
            died=lambda: None if self.proc.poll() is None else f"exit code {self.proc.returncode}",
        )

    def post(self, path, body):
        return requests.post(self.url + path, json=body, timeout=30)

    def stop(self) -> str:
        stop_process(self.proc, 30)
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture
def backend(tmp_path):
    target = tmp_path / "backend"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    return target


def annotate(server, task_id, text, label):
    return server.post(
        "/webhook",
        {
            "action": "ANNOTATION_CREATED",
            "project": {"id": 1, "label_config": CONFIG},
            "task": {"id": task_id, "data": {"text": text}},
            "annotation": {
                "id": 1000 + task_id,
                "result": [
                    {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                ],
            },
        },
    )


def wait_for_version(server, minimum: int, timeout=120.0) -> str:
    return wait_for(
        lambda: server.post("/setup", {"project": "1.1700000000", "schema": CONFIG}).json()["model_version"],
        timeout,
        0.1,
        what=f"model_version v{minimum} or later",
        until=lambda version: version.startswith("v") and int(version[1:]) >= minimum,
    )


def labels_of(results: list) -> list[str | None]:
    """The label of each task's prediction; None for the [] a model that cannot label yet answers."""
    return [
        item["result"][0]["value"]["choices"][0] if isinstance(item, dict) and item["result"] else None
        for item in results
    ]


def exercise(server: Started, n_rows: int | None = None):
    assert server.post(
        "/setup", {"project": "1.1700000000", "schema": CONFIG, "hostname": "http://127.0.0.1:1", "access_token": "tok"}
    ).json() == {"model_version": "0.0.1"}
    health = requests.get(server.url + "/health?details=true", timeout=5).json()
    assert {k: health[k] for k in ("status", "model_class")} == {"status": "UP", "model_class": "TextClassifier"}
    assert health["catchup"]["interval"] == 60.0  # on once a process knows the project /setup sent a token for
    tasks = [{"id": 1, "data": {"text": "great and lovely"}}, {"id": 2, "data": {"text": "terrible, bad"}}]
    r = server.post("/predict", {"tasks": tasks, "project": "1.1700000000", "label_config": CONFIG})
    assert r.status_code == 200
    assert r.json()["results"] == [[], []]  # untrained: no prediction per task
    for i, (text, label) in enumerate(ROWS[:n_rows]):
        r = annotate(server, i, text, label)
        assert r.status_code == 201 and r.json()["job"]
    wait_for_version(server, 1)
    # coalesced triggers may still be training: wait until all rows are learned
    results = wait_for(
        lambda: server.post("/predict", {"tasks": tasks, "project": "1.1700000000"}).json()["results"],
        120,
        0.2,
        what="both tasks labelled Positive, Negative",
        until=lambda results: labels_of(results) == ["Positive", "Negative"],
    )
    version = results[0]["model_version"]
    assert version.startswith("v") and results[1]["model_version"] == version
    assert 0.5 < results[0]["score"] <= 1.0
    versions = requests.get(server.url + "/versions", params={"project": "1"}, timeout=5).json()
    assert version in versions["versions"]
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert 'lsml_http_requests_total{method="POST",route="/predict",status="200"}' in metrics
    return version


def test_start_serves_the_example_from_any_directory_with_embedded_training(backend, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = Started(backend, elsewhere, "--embedded")
    try:
        exercise(server)
        assert (backend / "data" / "models" / "1" / "current").is_symlink()
        assert (backend / "logs" / "server.log").is_file()
        assert "Listening at" in (backend / "logs" / "server.log").read_text()
        assert "tok" not in (backend / "logs" / "server.log").read_text().replace("token", "")
    finally:
        out = server.stop()
    assert server.proc.returncode == 0, out
    # a restart serves the published version right away: the store's, read after the stop (a coalesced
    # fit can publish another version after the one exercise() saw)
    version = LocalModelStore(backend / "data" / "models").current("1").name
    server = Started(backend, elsewhere, "--embedded")
    try:
        assert server.post("/setup", {"project": "1.1", "schema": CONFIG}).json()["model_version"] == version
    finally:
        server.stop()


def test_start_with_several_workers_and_model_dir(backend, tmp_path):
    models = tmp_path / "models"
    server = Started(
        backend, tmp_path, "--embedded", "--workers", "2", "--threads", "4", env={"MODEL_DIR": str(models)}
    )
    try:
        exercise(server)
        assert (models / "1" / "current").is_symlink()
        assert not (backend / "data" / "models").exists()
        # every worker process hot-reloads to the store's current version
        task = [{"id": 1, "data": {"text": "great"}}]

        def served() -> tuple[str, set[str]]:
            newest = requests.get(server.url + "/versions", params={"project": "1"}, timeout=5).json()["model_version"]
            return newest, {
                server.post("/predict", {"tasks": task, "project": "1.1"}).json()["model_version"] for _ in range(20)
            }  # the response's: a version that cannot label yet answers [] per task

        wait_for(
            served,
            60,
            0.3,
            what="every worker to serve the newest version",
            until=lambda newest_seen: newest_seen[1] == {newest_seen[0]},
        )
        for _ in range(40):  # spread over both workers; /metrics must add them up
            requests.get(server.url + "/healthz", timeout=5)
        metrics = requests.get(server.url + "/metrics", timeout=5).text
        line = next(
            l
            for l in metrics.splitlines()
            if l.startswith('lsml_http_requests_total{method="GET",route="/healthz",status="200"}')
        )
        assert float(line.split()[-1]) == 40.0
    finally:
        server.stop()


@pytest.mark.redis
def test_start_with_redis_trains_in_an_rq_worker(backend, tmp_path, redis_url):
    server = Started(backend, tmp_path, env={"REDIS_URL": redis_url})
    try:
        exercise(server)
        assert (backend / "logs" / "worker.log").is_file()
    finally:
        server.stop()
