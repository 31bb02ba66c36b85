"""Registering ML backends in a real Label Studio: create, adopt, update, delete, basic auth."""

from __future__ import annotations

import pytest

from lsml.labelstudio import LabelStudioError
from lsml.labelstudio.webhooks import basic_auth_header
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def plain_backend(start_ml_backend):
    return start_ml_backend("text_classifier")


def test_ensure_creates_once_then_adopts_without_duplicates(ls_client, ls_project, plain_backend):
    project = ls_project()["id"]
    backend, created = ls_client.ensure_ml_backend(project, plain_backend.url, title="first")
    assert created is True
    assert backend["url"] == plain_backend.url
    assert ls_client.ml_backend(backend["id"])["readable_state"] == "Connected"

    again, created_again = ls_client.ensure_ml_backend(project, plain_backend.url + "/", title="first")
    assert created_again is False
    assert again["id"] == backend["id"]
    assert [b["id"] for b in ls_client.ml_backends(project)] == [backend["id"]]

    # Label Studio made the <url>/webhook webhook beside it (SSRF protection is off in tests).
    webhook = ls_client.backend_webhook(project, plain_backend.url)
    assert webhook is not None and webhook["send_payload"] and webhook["send_for_all_actions"]


def test_ensure_updates_fields_that_differ(ls_client, ls_project, plain_backend):
    project = ls_project()["id"]
    backend, _ = ls_client.ensure_ml_backend(project, plain_backend.url, title="old", extra_params={"k": 1})
    updated, created = ls_client.ensure_ml_backend(
        project,
        plain_backend.url,
        title="new",
        description="desc",
        is_interactive=True,
        extra_params={"k": 2},
        timeout=42,
    )
    assert created is False
    stored = ls_client.ml_backend(backend["id"])
    assert (stored["title"], stored["description"], stored["is_interactive"]) == ("new", "desc", True)
    assert stored["extra_params"] == {"k": 2}
    assert float(stored["timeout"]) == 42.0
    assert updated["id"] == backend["id"]
    assert len(ls_client.ml_backends(project)) == 1


def test_adopts_a_backend_someone_created_in_the_ui(ls_client, ls_project, plain_backend):
    project = ls_project()["id"]
    by_hand = ls_client.post_json("/api/ml/", {"url": plain_backend.url + "/", "project": project, "title": "by hand"})
    adopted, created = ls_client.ensure_ml_backend(project, plain_backend.url, title="by hand")
    assert created is False and adopted["id"] == by_hand["id"]
    assert len(ls_client.ml_backends(project)) == 1


def test_ensure_removes_duplicates_of_its_url_keeping_the_oldest(ls_client, ls_project, plain_backend):
    """Two registrations of one URL (a retried POST whose answer was lost, a person in the UI) converge to one."""
    project = ls_project()["id"]
    first = ls_client.post_json("/api/ml/", {"url": plain_backend.url, "project": project, "title": "first"})
    second = ls_client.post_json("/api/ml/", {"url": plain_backend.url + "/", "project": project, "title": "again"})
    assert len(ls_client.ml_backends(project)) == 2
    kept, created = ls_client.ensure_ml_backend(project, plain_backend.url, title="first")
    assert created is False and kept["id"] == first["id"]
    assert [b["id"] for b in ls_client.ml_backends(project)] == [first["id"]]
    assert second["id"] != first["id"]


def test_delete_removes_backend_and_its_webhook(ls_client, ls_project, plain_backend):
    project = ls_project()["id"]
    backend, _ = ls_client.ensure_ml_backend(project, plain_backend.url)
    assert ls_client.backend_webhook(project, plain_backend.url) is not None
    ls_client.delete_ml_backend(backend["id"])
    assert ls_client.ml_backends(project) == []
    assert ls_client.backend_webhook(project, plain_backend.url) is None
    with pytest.raises(LabelStudioError) as caught:
        ls_client.ml_backend(backend["id"])
    assert caught.value.status == 404


def test_basic_auth_sets_the_webhook_authorization_header(ls_client, ls_project, start_ml_backend):
    server = start_ml_backend("text_classifier", env={"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "s3cret-one"})
    project = ls_project()["id"]
    backend, created = ls_client.ensure_ml_backend(project, server.url, basic_auth=("ls", "s3cret-one"))
    assert created
    stored = ls_client.ml_backend(backend["id"])
    assert stored["auth_method"] == "BASIC_AUTH" and stored["basic_auth_pass_is_set"]
    assert stored["readable_state"] == "Connected"
    assert "basic_auth_pass" not in stored  # Label Studio never returns it, nor do we
    webhook = ls_client.backend_webhook(project, server.url)
    assert webhook["headers"]["Authorization"] == basic_auth_header("ls", "s3cret-one")

    # Idempotent: the same call changes nothing.
    again, created_again = ls_client.ensure_ml_backend(project, server.url, basic_auth=("ls", "s3cret-one"))
    assert not created_again and again["id"] == backend["id"]
    assert len(ls_client.webhooks(project)) == 1


def test_basic_auth_password_change_is_pushed_to_backend_and_webhook(ls_client, ls_project, start_ml_backend):
    server = start_ml_backend("text_classifier", env={"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "first"})
    project = ls_project()["id"]
    with pytest.raises(LabelStudioError) as caught:  # a wrong password is refused with Label Studio's reason
        ls_client.ensure_ml_backend(project, server.url, basic_auth=("ls", "wrong"))
    assert caught.value.status == 400
    assert "authentication parameters were either not provided or are incorrect" in caught.value.message
    backend, _ = ls_client.ensure_ml_backend(project, server.url, basic_auth=("ls", "first"))

    # The backend is restarted with a new password (same port): Label Studio loses it...
    server.stop()
    server.env["BASIC_AUTH_PASS"] = "second"
    server.start()
    assert ls_client.ml_backend(backend["id"])["readable_state"] != "Connected"
    # ...until ensure_ml_backend pushes the new one, which only the webhook header could tell apart.
    again, created = ls_client.ensure_ml_backend(project, server.url, basic_auth=("ls", "second"))
    assert not created and again["id"] == backend["id"]
    assert ls_client.ml_backend(backend["id"])["readable_state"] == "Connected"
    assert ls_client.backend_webhook(project, server.url)["headers"]["Authorization"] == basic_auth_header(
        "ls", "second"
    )


def test_refused_backend_url_carries_label_studios_reason(ls_client, ls_project):
    project = ls_project()["id"]
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioError) as caught:
        ls_client.ensure_ml_backend(project, dead)
    assert caught.value.status == 400
    assert f"Can't connect to ML backend {dead}" in caught.value.message
    assert ls_client.ml_backends(project) == []


def test_unknown_project_is_a_clear_404(ls_client, plain_backend):
    with pytest.raises(LabelStudioError) as caught:
        ls_client.ensure_ml_backend(987654, plain_backend.url)
    assert caught.value.status == 404
    assert "/api/ml/" in str(caught.value)
