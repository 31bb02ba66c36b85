"""What `start` launches: environment and gunicorn command line (the real run is in test_cli_start.py)."""

import shutil
import sys

import pytest

from lsml.backend_dir import BackendDirError
from lsml.launcher import (
    StartOptions,
    backend_env,
    check_backend,
    server_argv,
    serving_env,
    will_use_redis,
    worker_argv,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def backend(tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    (b / "_wsgi.py").write_text('MODEL = "model:M"\n')
    return b


def test_env_points_model_dir_and_metrics_into_the_backend(backend):
    (backend / "data" / "prometheus").mkdir(parents=True)
    (backend / "data" / "prometheus" / "stale.db").write_text("x")
    env = backend_env(StartOptions(backend), base={"REDIS_URL": "redis://x"})
    assert env["MODEL_DIR"] == str(backend.resolve() / "data" / "models")
    assert env["LSML_BACKEND_DIR"] == str(backend.resolve())
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(backend.resolve() / "data" / "prometheus")
    assert not (backend / "data" / "prometheus" / "stale.db").exists()
    assert env["REDIS_URL"] == "redis://x"
    assert "REDIS_URL" not in backend_env(StartOptions(backend, embedded=True), base={"REDIS_URL": "redis://x"})
    assert backend_env(StartOptions(backend), base={"MODEL_DIR": "rel"})["MODEL_DIR"].endswith("/rel")


def test_gunicorn_command_is_the_one_serving_command_with_the_knobs_in_env(backend):
    assert server_argv() == [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:lsml.server.gunicorn_conf",
        "_wsgi:app",
    ]
    env = serving_env(StartOptions(backend, host="127.0.0.1", port=1234, threads=3), workers=2, log_level="INFO")
    assert env == {
        "HOST": "127.0.0.1",
        "PORT": "1234",
        "WORKERS": "2",
        "THREADS": "3",
        "LOG_LEVEL": "INFO",
        "LSML_BACKEND_DIR": str(backend.resolve()),
    }
    assert worker_argv(StartOptions(backend))[-1] == str(backend.resolve())


def test_redis_is_used_when_configured_or_installed(backend):
    assert will_use_redis(StartOptions(backend), {"REDIS_URL": "redis://x"})
    assert not will_use_redis(StartOptions(backend, embedded=True), {"REDIS_URL": "redis://x"})
    assert will_use_redis(StartOptions(backend), {}) == bool(shutil.which("redis-server"))


def test_check_backend(backend, tmp_path):
    assert check_backend(backend) == "model:M"
    with pytest.raises(BackendDirError, match="does not exist"):
        check_backend(tmp_path / "missing")


def test_workers_and_threads_come_from_the_flags_else_the_reference_images_variables(backend):
    from lsml.launcher import worker_counts

    assert worker_counts(StartOptions(backend), {}, redis=False) == (1, 8)
    assert worker_counts(StartOptions(backend), {}, redis=True) == (2, 8)
    assert worker_counts(StartOptions(backend), {"WORKERS": "3", "THREADS": "4"}, redis=False) == (3, 4)
    assert worker_counts(StartOptions(backend, workers=5, threads=6), {"WORKERS": "3", "THREADS": "4"}, False) == (5, 6)
    with pytest.raises(ValueError, match="THREADS must be >= 1"):
        worker_counts(StartOptions(backend), {"THREADS": "0"}, redis=False)
