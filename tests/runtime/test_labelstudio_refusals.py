"""A Label Studio with its default protections on: refusals are clear, and a restart keeps everything.

Uses a second, module-scoped Label Studio (the session one runs with the
protections off, as local development needs); it also exercises the
fixture's stop()/start() pair that the operator tests rely on.
"""

from __future__ import annotations

import logging

import pytest

from lsml.cli.main import main as cli_main
from lsml.labelstudio import LabelStudioError, LabelStudioUnreachable
from tests.fixtures.label_studio import SENTIMENT_CONFIG, LabelStudioServer, find_label_studio_binary
from tests.fixtures.processes import running

pytestmark = pytest.mark.labelstudio


@pytest.fixture(scope="module")
def strict_label_studio(tmp_path_factory):
    yield from running(
        LabelStudioServer(
            find_label_studio_binary(),
            tmp_path_factory.mktemp("strict-label-studio"),
            extra_env={"ML_BLOCK_LOCAL_IP": "true", "SSRF_PROTECTION_ENABLED": "true"},
        )
    )


def test_loopback_backend_is_refused_with_label_studios_reason(strict_label_studio, start_ml_backend, capsys):
    backend = start_ml_backend("text_classifier")
    client = strict_label_studio.client()
    project = client.create_project("strict", SENTIMENT_CONFIG)["id"]
    with pytest.raises(LabelStudioError) as caught:
        client.ensure_ml_backend(project, backend.url)
    assert caught.value.status in (400, 403)
    assert "reserved network address" in caught.value.message  # Label Studio's own words
    assert "ML_BLOCK_LOCAL_IP=false" in caught.value.message  # and how to lift the refusal
    assert client.ml_backends(project) == []

    code = cli_main(
        [
            "register",
            backend.url,
            "--ls-url",
            strict_label_studio.url,
            "--project",
            str(project),
            "--api-key",
            strict_label_studio.legacy_token,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "ML_BLOCK_LOCAL_IP=false" in err and "SSRF_PROTECTION_ENABLED=false" in err
    assert strict_label_studio.legacy_token not in err


def test_restart_keeps_data_and_tokens_and_ssrf_protection_drops_the_webhook(
    strict_label_studio, start_ml_backend, caplog
):
    backend = start_ml_backend("text_classifier")
    pat = strict_label_studio.personal_access_token()
    client = strict_label_studio.client(pat)
    project = client.create_project("survives restarts", SENTIMENT_CONFIG)["id"]
    port = strict_label_studio.port

    strict_label_studio.stop()
    with pytest.raises(LabelStudioUnreachable):
        strict_label_studio.client(retries=0).projects()

    # Allow loopback backends but keep SSRF protection: registration works, the webhook cannot.
    strict_label_studio.extra_env["ML_BLOCK_LOCAL_IP"] = "false"
    strict_label_studio.start()
    assert strict_label_studio.port == port
    assert project in [p["id"] for p in client.projects()]  # same data dir, and the PAT still works

    with caplog.at_level(logging.WARNING, logger="lsml.labelstudio"):
        registered, created = client.ensure_ml_backend(project, backend.url)
    assert created and client.ml_backend(registered["id"])["readable_state"] == "Connected"
    assert client.backend_webhook(project, backend.url) is None
    assert any("SSRF_PROTECTION_ENABLED=false" in r.getMessage() for r in caplog.records)
    # Label Studio answered 403 yet saved the backend: it was adopted, and a second call makes no duplicate.
    again, created_again = client.ensure_ml_backend(project, backend.url)
    assert not created_again and again["id"] == registered["id"]
    assert len(client.ml_backends(project)) == 1
