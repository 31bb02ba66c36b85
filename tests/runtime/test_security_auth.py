"""Issue 10 item 3 (runtime): Basic auth fails closed, and `start` does not expose an open server by default."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsml.settings import Settings
from tests.fixtures.ports import free_port

CLI = str(Path(sys.executable).parent / "label-studio-ml")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text_classifier"

HALF_CONFIGURED = [
    ({"BASIC_AUTH_USER": "ls"}, "BASIC_AUTH_PASS"),
    ({"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": ""}, "BASIC_AUTH_PASS"),
    ({"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "   "}, "BASIC_AUTH_PASS"),
    ({"BASIC_AUTH_PASS": "s3cret"}, "BASIC_AUTH_USER"),
    ({"BASIC_AUTH_USER": " ", "BASIC_AUTH_PASS": "s3cret"}, "BASIC_AUTH_USER"),
]


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    """A copy of the example: `start` writes logs/ and data/ into the backend dir."""
    target = tmp_path / "backend"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    return target


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BASIC_AUTH_", "LSML_", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"))
    }
    env.update(MODEL_DIR=str(tmp_path / "models"), **extra)
    return env


@pytest.mark.parametrize("env,missing", HALF_CONFIGURED)
def test_settings_refuse_half_configured_basic_auth(tmp_path, env, missing):
    with pytest.raises(ValueError, match=missing) as caught:
        Settings.from_env(env=env, backend_dir=tmp_path)
    assert "s3cret" not in str(caught.value)


def test_settings_built_in_code_refuse_a_blank_password_too(tmp_path):
    base = Settings.from_env(env={}, backend_dir=tmp_path)
    with pytest.raises(ValueError, match="BASIC_AUTH_PASS"):
        base.replace(basic_auth_user="ls", basic_auth_pass="")
    on = base.replace(basic_auth_user="ls", basic_auth_pass="p")
    assert on.basic_auth_enabled and not base.basic_auth_enabled


@pytest.mark.parametrize("env,missing", HALF_CONFIGURED[:2] + HALF_CONFIGURED[3:4])
def test_start_refuses_half_configured_basic_auth(tmp_path, backend, env, missing):
    done = subprocess.run(
        [CLI, "start", str(backend), "--port", str(free_port()), "--embedded"],
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert missing in done.stderr and "serving" not in done.stderr


def test_gunicorn_app_import_refuses_half_configured_basic_auth(tmp_path, backend):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(backend),
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "1",
            "_wsgi:app",
        ],
        env=clean_env(tmp_path, BASIC_AUTH_USER="ls"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "BASIC_AUTH_PASS is empty or missing" in done.stderr


def test_start_binds_loopback_unless_told():
    from lsml.cli.main import build_parser

    assert build_parser().parse_args(["start", "x"]).host == "127.0.0.1"
    assert build_parser().parse_args(["start", "x", "--host", "0.0.0.0"]).host == "0.0.0.0"


@pytest.mark.parametrize(
    "host,warns",
    [
        ("0.0.0.0", True),
        ("::", True),
        ("10.1.2.3", True),
        ("backend.lan", True),
        ("127.0.0.1", False),
        ("127.0.0.5", False),
        ("::1", False),
        ("localhost", False),
    ],
)
def test_start_warns_when_auth_is_off_on_a_non_loopback_bind(tmp_path, host, warns):
    from lsml.launcher import StartOptions, exposure_warning

    options = StartOptions(tmp_path, host=host, port=9999)
    open_settings = Settings.from_env(env={}, backend_dir=tmp_path)
    warning = exposure_warning(options, open_settings)
    assert (warning is not None) == warns
    if warns:
        assert f"{host}:9999" in warning and "BASIC_AUTH_USER" in warning
    assert exposure_warning(options, open_settings.replace(basic_auth_user="ls", basic_auth_pass="p")) is None


def test_start_prints_the_warning_before_serving_a_non_loopback_address(tmp_path, backend):
    # 192.0.2.1 (TEST-NET-1) is on no interface: gunicorn cannot bind it, so nothing is ever exposed
    done = subprocess.run(
        [CLI, "start", str(backend), "--host", "192.0.2.1", "--port", str(free_port()), "--embedded"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "WARNING: serving on 192.0.2.1" in done.stderr and "without authentication" in done.stderr
    assert done.returncode != 0  # and it did not serve
