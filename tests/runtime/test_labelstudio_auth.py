"""Both kinds of Label Studio token against a real Label Studio 1.23.2."""

from __future__ import annotations

import base64
import json
import time

import pytest

from lsml.labelstudio import LEGACY, PERSONAL_ACCESS_TOKEN, LabelStudioClient, LabelStudioError, token_kind

pytestmark = pytest.mark.labelstudio


def test_legacy_token_is_sent_as_token_and_works(label_studio):
    client = label_studio.client()
    assert client.token_kind == LEGACY
    assert client.current_user()["email"] == label_studio.username


def test_personal_access_token_is_exchanged_for_a_bearer_access_token(label_studio):
    pat = label_studio.personal_access_token()
    client = LabelStudioClient(label_studio.url, pat)
    assert client.token_kind == PERSONAL_ACCESS_TOKEN
    assert client.current_user()["email"] == label_studio.username
    access = client.auth.access_token()
    assert access != pat
    assert token_kind(access) == PERSONAL_ACCESS_TOKEN


def test_expired_access_token_is_refreshed_before_use(label_studio):
    client = LabelStudioClient(label_studio.url, label_studio.personal_access_token())
    client.current_user()
    first = client.auth.access_token()
    # Pretend the access token's lifetime (5 minutes in 1.23.2) is over.
    client.auth._access_expires_at = time.time() - 1
    time.sleep(1.1)  # JWT iat has second resolution: the next token must differ
    assert client.current_user()["email"] == label_studio.username
    assert client.auth.access_token() != first


def test_rejected_access_token_is_refreshed_once_on_401(label_studio):
    client = LabelStudioClient(label_studio.url, label_studio.personal_access_token())
    client.current_user()
    # An access token Label Studio does not accept (as after a revocation or a
    # signing key change) but that our client still believes valid.
    forged = _forged_jwt(exp=time.time() + 3600)
    client.auth._access = forged
    client.auth._access_expires_at = time.time() + 3600
    assert client.current_user()["email"] == label_studio.username
    assert client.auth.access_token() != forged


def test_wrong_legacy_token_gives_a_clear_401_without_the_token(label_studio):
    bad = "0" * 40
    client = LabelStudioClient(label_studio.url, bad)
    with pytest.raises(LabelStudioError) as caught:
        client.projects()
    assert caught.value.status == 401
    assert "token kind: legacy" in str(caught.value)
    assert bad not in str(caught.value)
    assert bad not in repr(client)


def test_wrong_personal_access_token_is_refused_at_refresh(label_studio):
    bad = _forged_jwt(exp=time.time() + 3600, token_type="refresh")
    client = LabelStudioClient(label_studio.url, bad)
    with pytest.raises(LabelStudioError) as caught:
        client.projects()
    assert caught.value.status == 401
    assert caught.value.path == "/api/token/refresh/"
    assert "personal access token refused" in caught.value.message
    assert bad not in str(caught.value)


def test_unreachable_label_studio_is_reported_as_such():
    from tests.fixtures.ports import free_port

    client = LabelStudioClient(f"http://127.0.0.1:{free_port()}", "x" * 40, retries=0)
    with pytest.raises(LabelStudioError) as caught:
        client.projects()
    assert caught.value.status is None
    assert "cannot reach Label Studio" in str(caught.value)


def test_token_kind_is_told_by_shape():
    assert token_kind("a" * 40) == LEGACY
    assert token_kind("not.a.jwt") == LEGACY
    assert token_kind(_forged_jwt(exp=1)) == PERSONAL_ACCESS_TOKEN


def _forged_jwt(exp: float, token_type: str = "access") -> str:
    def segment(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return ".".join(
        [
            segment({"alg": "HS256", "typ": "JWT"}),
            segment({"exp": int(exp), "token_type": token_type, "user_id": 1}),
            "c2ln",
        ]
    )
