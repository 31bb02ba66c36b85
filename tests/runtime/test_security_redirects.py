"""Issue 22 item 7: no Label Studio credential follows a redirect to another origin.

A personal access token's refresh (`POST /api/token/refresh/ {"refresh": <PAT>}`) answered with a
cross-origin 307/308 was re-sent, body and all, to the other origin (requests strips only headers and
cookies). Label Studio's API session now refuses any redirect that leaves its origin (`RedirectRefused`),
and media downloads refuse one that would re-send a body. Two real HTTP servers on free loopback ports
(tests.fixtures.http_recorder) play Label Studio and the other origin.
"""

from __future__ import annotations

import base64
import json

import pytest

from lsml.labelstudio import LabelStudioClient, RedirectRefused
from tests.fixtures.http_recorder import Answer

JSON = {"Content-Type": "application/json"}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


#: A personal access token's shape (a JWT; Label Studio verifies it, the client only reads its shape).
PAT = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'token_type': 'refresh', 'exp': 4102444800})}.c2ln"


@pytest.mark.parametrize("status", [307, 308])
def test_a_pat_refresh_is_never_re_sent_to_another_origin(http_recorder, status):
    label_studio, elsewhere = http_recorder(), http_recorder()
    label_studio.routes["/api/token/refresh/"] = Answer(
        status, b"", {"Location": f"{elsewhere.url}/api/token/refresh/"}
    )
    elsewhere.routes["/api/token/refresh/"] = Answer(200, json.dumps({"access": "stolen"}).encode(), JSON)
    with LabelStudioClient(label_studio.url, PAT) as client, pytest.raises(RedirectRefused) as refused:
        client.current_user()
    assert elsewhere.requests == []  # neither the body nor anything else reached the other origin
    assert [json.loads(r.body) for r in label_studio.requests] == [{"refresh": PAT}]
    message = str(refused.value)
    assert f"redirected ({status}) to another origin, {elsewhere.url}" in message
    assert "LABEL_STUDIO_URL" in message and PAT not in message


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_api_call_with_a_token_is_not_redirected_to_another_origin(http_recorder, status):
    label_studio, elsewhere = http_recorder(), http_recorder()
    label_studio.routes["/api/projects/"] = Answer(status, b"", {"Location": f"{elsewhere.url}/api/projects/"})
    elsewhere.routes["/api/projects/"] = Answer(200, b"[]", JSON)
    with LabelStudioClient(label_studio.url, "legacy-token") as client, pytest.raises(RedirectRefused):
        client.post_json("/api/projects/", {"title": "x"})
    assert elsewhere.requests == []


def test_a_redirect_within_label_studios_origin_is_still_followed(http_recorder):
    label_studio = http_recorder()
    label_studio.routes["/api/old/"] = Answer(308, b"", {"Location": "/api/projects/1/"})
    label_studio.routes["/api/projects/1/"] = Answer(200, b'{"id": 1}', JSON)
    with LabelStudioClient(label_studio.url, "legacy-token") as client:
        assert client.get_json("/api/old/") == {"id": 1}
    assert label_studio.header_values("Authorization") == ["Token legacy-token"] * 2
