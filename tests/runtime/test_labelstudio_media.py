"""Fetching task media through a real Label Studio, with an on-disk cache."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from lsml.labelstudio import AddressPolicy, LabelStudioClient, LabelStudioError
from lsml.labelstudio.media import cache_path
from tests.fixtures.label_studio import IMAGE_CONFIG

pytestmark = pytest.mark.labelstudio


def _png(path: Path, color=(200, 30, 30)) -> Path:
    Image.new("RGB", (8, 6), color).save(path, format="PNG")
    return path


def _count_requests(client) -> list[str]:
    seen: list[str] = []
    client.media_session.hooks["response"].append(lambda r, *a, **k: seen.append(r.url))  # media's own session
    return seen


def test_uploaded_image_is_downloaded_once_then_served_from_cache(ls_client, ls_project, tmp_path):
    project = ls_project(IMAGE_CONFIG)["id"]
    source = _png(tmp_path / "cat.png")
    summary = ls_client.upload_file(project, source)
    assert summary["task_count"] == 1
    url = ls_client.tasks(project)[0]["data"]["image"]
    assert url.startswith("/data/upload/")

    requests_made = _count_requests(ls_client)
    cache = tmp_path / "cache"
    first = ls_client.download(url, cache)
    assert first.read_bytes() == source.read_bytes()
    assert first.suffix == ".png" and first.parent == cache
    assert len(requests_made) == 1

    second = ls_client.download(url, cache)
    assert second == first
    assert len(requests_made) == 1  # no second request: the cache answered
    assert not [p for p in cache.iterdir() if p.name.startswith(".partial-")]


def test_download_without_token_is_refused_by_label_studio(label_studio, ls_client, ls_project, tmp_path):
    project = ls_project(IMAGE_CONFIG)["id"]
    ls_client.upload_file(project, _png(tmp_path / "dog.png"))
    url = ls_client.tasks(project)[0]["data"]["image"]
    anonymous = type(ls_client)(label_studio.url, token=None)
    with pytest.raises(LabelStudioError) as caught:
        anonymous.download(url, tmp_path / "cache")
    assert caught.value.status in (401, 403)
    assert not cache_path(anonymous.absolute_url(url), tmp_path / "cache").exists()


def test_local_files_url_is_fetched_with_label_studio_auth(label_studio, ls_client, ls_project, tmp_path):
    project = ls_project(IMAGE_CONFIG)["id"]
    folder = label_studio.local_files_root / f"p{project}"
    folder.mkdir(parents=True)
    image = _png(folder / "local.png", (10, 200, 10))
    # Label Studio serves a local file only through a local-files storage of a project the user can see.
    ls_client.post_json(
        "/api/storages/localfiles/",
        {"project": project, "path": str(folder), "title": "local", "use_blob_urls": True},
    )
    url = f"/data/local-files/?d=p{project}/local.png"
    path = ls_client.download(url, tmp_path / "cache")
    assert path.read_bytes() == image.read_bytes()
    assert path.suffix == ".png"


class _RecordingHandler(BaseHTTPRequestHandler):
    seen_authorization: list[str | None] = []
    seen_cookie: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).seen_authorization.append(self.headers.get("Authorization"))
        type(self).seen_cookie.append(self.headers.get("Cookie"))
        body = b"external bytes"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_external_url_never_gets_label_studios_token(label_studio, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # the loopback server plays an external media host: private addresses allowed for this client
    client = LabelStudioClient(
        label_studio.url, label_studio.legacy_token, media_policy=AddressPolicy(allow_private=True)
    )
    try:
        client.current_user()  # whatever cookies Label Studio sets, the client now holds
        client.session.cookies.set("sessionid", "label-studio-session", domain="127.0.0.1")
        url = f"http://127.0.0.1:{server.server_address[1]}/files/a.txt"
        path = client.download(url, tmp_path / "cache")
        assert path.read_bytes() == b"external bytes"
        assert _RecordingHandler.seen_authorization == [None]
        assert _RecordingHandler.seen_cookie == [None]  # nor its cookies (same host, other port)
    finally:
        server.shutdown()
        server.server_close()


def test_cloud_storage_uri_gets_an_explanation(ls_client, tmp_path):
    with pytest.raises(LabelStudioError) as caught:
        ls_client.download("s3://bucket/key.png", tmp_path)
    assert "pre-signed" in caught.value.message
