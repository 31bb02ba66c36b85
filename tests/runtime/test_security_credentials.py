"""Issue 10 item 2: a Label Studio credential goes only to the origin it was configured for.

The attacker is a real HTTP server on a free loopback port (tests.fixtures.http_recorder)
that records every request it gets and answers like an empty Label Studio.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from urllib3.util import parse_url

from lsml.credentials import origin, same_origin
from lsml.labelstudio import AddressPolicy, LabelStudioClient
from lsml.labelstudio.auth import LegacyTokenAuth, PersonalAccessTokenAuth
from lsml.model import BuildContext, LabelStudioMLBase, build_model
from lsml.state import MemoryState
from tests.fixtures.http_recorder import Answer
from tests.fixtures.label_studio import SENTIMENT_CONFIG

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text_classifier"
EMPTY_TASKS = Answer(200, json.dumps({"tasks": [], "total": 0}).encode(), {"Content-Type": "application/json"})


def attacker_label_studio(http_recorder):
    attacker = http_recorder()
    attacker.routes["/api/tasks"] = EMPTY_TASKS
    return attacker


def test_origin_is_scheme_host_and_port():
    from lsml.credentials import origin, same_origin

    assert origin("http://LS.example:80/x") == "http://ls.example:80" == origin("http://ls.example")
    assert origin("https://ls.example/") == "https://ls.example:443"
    assert origin("ftp://ls.example") is None and origin("ls.example") is None and origin(None) is None
    assert same_origin("http://127.0.0.1:8080/a", "http://127.0.0.1:8080")
    assert not same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert not same_origin("http://ls", "https://ls")


@pytest.mark.labelstudio
def test_setup_exploit_never_sends_the_configured_key_to_the_attacker(
    label_studio, ls_client, ls_project, serve, http_recorder, caplog
):
    """The issue's exploit: unauthenticated /setup naming the attacker, then START_TRAINING."""
    attacker = attacker_label_studio(http_recorder)
    project = ls_project(SENTIMENT_CONFIG)["id"]
    ls_client.import_tasks(project, [{"text": "great fun"}, {"text": "awful plot"}, {"text": "unlabelled"}])
    tasks = ls_client.tasks(project)
    for task, label in zip(tasks[:2], ("Positive", "Negative"), strict=True):
        ls_client.create_annotation(
            task["id"],
            [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        )
    app, client = serve(
        "model:TextClassifier",
        backend_dir=EXAMPLE,
        label_studio_url=label_studio.url,
        label_studio_api_key=label_studio.legacy_token,
    )

    r = client.post(
        "/setup",
        json={
            "project": f"{project}.1700000000",
            "schema": SENTIMENT_CONFIG,
            "hostname": attacker.url,
            "access_token": "attacker-chosen",
        },
    )
    assert r.status_code == 200
    r = client.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": project, "label_config": SENTIMENT_CONFIG}}
    )
    assert r.status_code == 201, r.get_json()
    status = app.extensions["lsml"].queue.wait(r.get_json()["job"], timeout=60)

    assert attacker.requests == []  # not a single request, so certainly not the key
    assert status["status"] == "finished", status
    # the version was trained on the real Label Studio's two annotated tasks, not on the attacker's empty list
    version = app.extensions["lsml"].registry.store.current(str(project))
    assert version is not None and version.metadata["result"] == {
        "examples": 2,
        "labels": ["Negative", "Positive"],
        "trained": True,
    }
    warnings = [rec.getMessage() for rec in caplog.records if "ignoring that hostname" in rec.getMessage()]
    assert (
        warnings
        and attacker.url.replace("http://", "") in warnings[0]
        and label_studio.url.split("//")[1] in warnings[0]
    )
    assert all(label_studio.legacy_token not in rec.getMessage() for rec in caplog.records)


def test_a_setup_token_never_follows_a_later_setup_to_another_host(serve, http_recorder):
    """No LABEL_STUDIO_URL: Label Studio's /setup token must not go to the host a second /setup names."""
    attacker = attacker_label_studio(http_recorder)
    app, client = serve(LabelStudioMLBase)
    assert (
        client.post(
            "/setup",
            json={
                "project": "7",
                "hostname": "http://127.0.0.1:1",
                "schema": SENTIMENT_CONFIG,
                "access_token": "label-studio-token",
            },
        ).status_code
        == 200
    )
    assert client.post("/setup", json={"project": "7", "hostname": attacker.url}).status_code == 200
    rt = app.extensions["lsml"]
    model = build_model(LabelStudioMLBase, "7", None, BuildContext(rt.settings, rt.registry.state))
    assert list(model.fetch_annotated_tasks()) == []
    assert attacker.header_values("Authorization") == [None]


def test_a_key_without_its_url_is_sent_nowhere(serve, http_recorder, caplog, monkeypatch):
    from lsml import credentials

    # the warning is logged once per process: an earlier test of the session may have spent it
    monkeypatch.setattr(credentials, "_warned", set())
    attacker = attacker_label_studio(http_recorder)
    app, client = serve(LabelStudioMLBase, label_studio_api_key="configured-key")
    assert (
        client.post("/setup", json={"project": "1", "hostname": attacker.url, "schema": SENTIMENT_CONFIG}).status_code
        == 200
    )
    rt = app.extensions["lsml"]
    model = build_model(LabelStudioMLBase, "1", None, BuildContext(rt.settings, rt.registry.state))
    assert list(model.fetch_annotated_tasks()) == []
    assert attacker.header_values("Authorization") == [None]
    assert any("LABEL_STUDIO_API_KEY is set without LABEL_STUDIO_URL" in r.getMessage() for r in caplog.records)


def test_setup_hostname_must_be_an_http_url(serve):
    _, client = serve(LabelStudioMLBase)
    r = client.post("/setup", json={"project": "1", "hostname": "file:///etc", "access_token": "t"})
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field"
    assert "hostname" in r.get_json()["message"]


def test_resolve_pairs_url_and_token(settings):
    from lsml.credentials import Credential, resolve

    configured = settings.replace(label_studio_url="http://ls:8080", label_studio_api_key="key")
    assert resolve(configured, {"hostname": "http://evil:8080", "access_token": "t"}) == Credential(
        "http://ls:8080", "key"
    )
    assert resolve(configured, {"hostname": "http://ls:8080/", "access_token": "t"}).token == "key"
    assert resolve(
        settings.replace(label_studio_url="http://ls:8080"), {"hostname": "http://ls:8080", "access_token": "t"}
    ) == Credential("http://ls:8080", "t")
    assert resolve(
        settings.replace(label_studio_url="http://ls:8080"), {"hostname": "http://evil", "access_token": "t"}
    ) == Credential("http://ls:8080", None)
    assert resolve(settings, {"hostname": "http://ls", "access_token": "t"}) == Credential("http://ls", "t")
    assert resolve(settings, None) == Credential(None, None)


def model_with_configured_key(settings):
    """A model whose Label Studio (`127.0.0.1:1`, nothing listens) has a key; the loopback media server plays a
    media host on another address, so private addresses are allowed."""
    return build_model(
        LabelStudioMLBase,
        "1",
        None,
        BuildContext(
            settings.replace(
                label_studio_url="http://127.0.0.1:1", label_studio_api_key="configured-key", media_allow_private=True
            ),
            MemoryState(),
        ),
    )


def test_media_on_another_host_gets_no_token_even_when_named_as_ls_host(settings, http_recorder):
    media = http_recorder()
    media.routes["/img.png"] = Answer(200, b"bytes")
    model = model_with_configured_key(settings)
    assert Path(model.get_local_path(f"{media.url}/img.png")).read_bytes() == b"bytes"
    assert (
        Path(
            model.get_local_path("/img.png", ls_host=media.url, project_dir=str(settings.model_dir / "m"))
        ).read_bytes()
        == b"bytes"
    )
    assert media.header_values("Authorization") == [None, None]


def test_a_backslash_in_a_media_url_sends_no_token_to_the_host_requests_connects_to(settings, http_recorder):
    """`http://<media>\\@<label studio>/img.png` in task data: `urlsplit` reads Label Studio's host after the
    `@`, but urllib3 ends the host at the backslash and connects to the media server. Before the fix the
    token went along, to whoever wrote the task."""
    media = http_recorder()
    media.routes["/"] = Answer(200, b"bytes")
    model = model_with_configured_key(settings)
    model.get_local_path(media.url + "\\@127.0.0.1:1/img.png")
    assert media.header_values("Authorization") == [None]  # the request reached the media server, bare


def test_origin_is_the_host_the_request_reaches_where_parsers_disagree():
    tricky = "https://evil.example\\@ls.example:8080/a.png"
    assert parse_url(tricky).host == "evil.example"  # where requests connects
    assert origin(tricky) == "https://evil.example:443"
    assert not same_origin(tricky, "https://ls.example:8080")


@pytest.mark.parametrize("kind", ["legacy", "personal access token"])
def test_a_token_is_never_attached_to_a_request_for_another_origin(kind):
    """The auth hooks check the URL as it is sent, whatever the caller decided from the raw string."""
    minted = []

    def post(*args, **kwargs):
        minted.append(args)
        raise AssertionError("no access token is minted for a foreign request")

    auth = (
        LegacyTokenAuth("configured-key", "http://ls.example:8080")
        if kind == "legacy"
        else PersonalAccessTokenAuth("refresh", "http://ls.example:8080/api/token/refresh/", post, 1.0)
    )
    for url in ("http://evil.example\\@ls.example:8080/x", "http://ls.example:8081/x", "https://ls.example:8080/x"):
        prepared = requests.Request("GET", url, auth=auth).prepare()
        assert "Authorization" not in prepared.headers, url
    assert minted == []
    if kind == "legacy":
        own = requests.Request("GET", "http://LS.example:8080/api/x", auth=auth).prepare()
        assert own.headers["Authorization"] == "Token configured-key"


def test_redirect_to_another_origin_drops_the_token_and_the_cookies(http_recorder, tmp_path):
    """A Label Studio answering a media URL with a redirect elsewhere: a fault a real Label Studio
    (no redirecting storage configured) cannot be made to produce, so a recording server plays it."""
    elsewhere = http_recorder()
    elsewhere.routes["/stolen.png"] = Answer(200, b"png")
    redirecting = http_recorder()
    redirecting.routes["/data/upload/"] = Answer(302, b"", {"Location": f"{elsewhere.url}/stolen.png"})
    # both servers are on loopback: private media addresses allowed (the address policy is tested apart)
    client = LabelStudioClient(redirecting.url, "legacy-token", media_policy=AddressPolicy(allow_private=True))
    client.session.cookies.set("sessionid", "label-studio-session", domain="127.0.0.1")
    client.media_session.cookies.set("sessionid", "label-studio-session", domain="127.0.0.1")
    path = client.download("/data/upload/1/x.png", tmp_path)
    assert path.read_bytes() == b"png"
    assert redirecting.header_values("Authorization") == ["Token legacy-token"]
    assert elsewhere.header_values("Authorization") == [None]
    assert elsewhere.header_values("Cookie") == [None]


def test_a_token_ending_in_a_newline_is_sent_without_it_and_one_with_a_control_character_is_refused_unshown(
    http_recorder,
):
    """A token from a file or a Secret made with `--from-file` ends in a newline. As a header that failed in
    http.client with a ValueError quoting the header, token and all, into whatever log showed the error."""
    ls = http_recorder()
    ls.routes["/"] = Answer(200, b'{"id": 1}', {"Content-Type": "application/json"})
    client = LabelStudioClient(ls.url, "0123456789abcdef\n")
    try:
        client.current_user()
    finally:
        client.close()
    assert ls.header_values("Authorization") == ["Token 0123456789abcdef"]
    for bad in ("0123\r\nX-Evil: 1", "0123 4567", "0123\x00", "jürgen"):
        with pytest.raises(ValueError, match="the value is not shown") as refused:
            LabelStudioClient(ls.url, bad)
        assert "0123" not in str(refused.value) and "rgen" not in str(refused.value)
    assert len(ls.requests) == 1  # nothing more was sent
