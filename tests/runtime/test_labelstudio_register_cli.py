"""`label-studio-ml register` against a real Label Studio and a real backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsml.cli.main import main as cli_main

pytestmark = pytest.mark.labelstudio

CLI = str(Path(sys.executable).parent / "label-studio-ml")


def test_register_in_two_projects_then_again_is_idempotent(label_studio, ls_client, ls_project, start_ml_backend):
    backend = start_ml_backend("text_classifier")
    projects = [ls_project()["id"], ls_project()["id"]]
    env = {**os.environ, "LABEL_STUDIO_API_KEY": label_studio.personal_access_token()}
    argv = [
        CLI,
        "register",
        backend.url,
        "--ls-url",
        label_studio.url,
        "--title",
        "cli",
        "--project",
        str(projects[0]),
        "--project",
        str(projects[1]),
    ]

    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": registered: ML backend") == 2
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already registered, up to date") == 2
    for project in projects:
        backends = ls_client.ml_backends(project)
        assert [(b["url"], b["title"]) for b in backends] == [(backend.url, "cli")]
    assert env["LABEL_STUDIO_API_KEY"] not in first.stdout + first.stderr + second.stdout + second.stderr


def test_register_with_basic_auth_from_env(label_studio, ls_client, ls_project, start_ml_backend, monkeypatch, capsys):
    backend = start_ml_backend("text_classifier", env={"BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p-ss"})
    project = ls_project()["id"]
    monkeypatch.setenv("BASIC_AUTH_USER", "u")
    monkeypatch.setenv("BASIC_AUTH_PASS", "p-ss")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.legacy_token)
    code = cli_main(["register", backend.url, "--ls-url", label_studio.url, "--project", str(project)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "p-ss" not in out.out + out.err
    (registered,) = ls_client.ml_backends(project)
    assert registered["auth_method"] == "BASIC_AUTH" and registered["readable_state"] == "Connected"


def test_unknown_project_fails_with_a_hint_and_other_projects_still_register(
    label_studio, ls_client, ls_project, start_ml_backend, capsys
):
    backend = start_ml_backend("text_classifier")
    good = ls_project()["id"]
    code = cli_main(
        [
            "register",
            backend.url,
            "--ls-url",
            label_studio.url,
            "--api-key",
            label_studio.legacy_token,
            "--project",
            "987654",
            "--project",
            str(good),
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "project 987654" in out.err and "does project 987654 exist" in out.err
    assert f"project {good}: registered" in out.out
    assert label_studio.legacy_token not in out.err


def test_missing_settings_are_usage_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)
    code = cli_main(["register", str(tmp_path / "nope"), "--project", "1", "--basic-auth-user", "u"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--ls-url" in err and "LABEL_STUDIO_API_KEY" in err
    assert "both a user and a password" in err
    assert "neither an http(s) URL nor a backend directory" in err


def test_wrong_api_key_is_reported_without_echoing_it(label_studio, ls_project, capsys):
    project = ls_project()["id"]
    bad = "f" * 40
    code = cli_main(
        ["register", "http://127.0.0.1:9", "--ls-url", label_studio.url, "--api-key", bad, "--project", str(project)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "HTTP 401" in err and "check the API key" in err
    assert bad not in err


def test_backend_directory_names_the_address_start_serves_it_on(tmp_path):
    from lsml.cli.register import backend_url

    assert backend_url(str(tmp_path), "localhost", 9090) == "http://localhost:9090"
    assert backend_url(str(tmp_path), "10.1.2.3", 9191) == "http://10.1.2.3:9191"
    assert backend_url("https://ml.example.org/backend/", "ignored", 1) == "https://ml.example.org/backend"
    with pytest.raises(ValueError, match="neither an http"):
        backend_url(str(tmp_path / "missing"), "localhost", 9090)
