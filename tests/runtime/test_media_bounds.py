"""Media downloads are bounded in size and in total time, against a real loopback HTTP server."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lsml.labelstudio import LabelStudioClient
from lsml.labelstudio.media import MediaRefused
from lsml.model import BuildContext, build_model
from lsml.settings import Settings
from lsml.state import make_state
from tests.fixtures.sample_models import CountingModel

pytestmark = pytest.mark.unit

CAP = 256 * 1024
MiB = b"x" * (1024 * 1024)


class Handler(BaseHTTPRequestHandler):
    stop = threading.Event()

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            if self.path == "/small.txt":
                self._headers(5)
                self.wfile.write(b"hello")
            elif self.path == "/declared-huge.bin":  # says so up front, then sends a little
                self._headers(50 * 1024 * 1024)
                self.wfile.write(MiB[:1024])
            elif self.path == "/endless.bin":  # no length: keeps sending until the client hangs up
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                while not self.stop.is_set():
                    self.wfile.write(MiB)
            elif self.path == "/trickle.bin":  # one byte every 50 ms: each read is quick, the whole is not
                self._headers(100_000)
                while not self.stop.is_set():
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def media_server():
    Handler.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Handler.stop.set()
    server.shutdown()
    server.server_close()


def nothing_cached(cache: Path) -> bool:
    return not cache.exists() or list(cache.iterdir()) == []


def test_a_small_file_downloads(media_server, tmp_path):
    with LabelStudioClient(media_server) as client:
        path = client.download(media_server + "/small.txt", tmp_path / "cache", max_bytes=CAP, timeout=5)
    assert path.read_bytes() == b"hello"


def test_a_declared_length_over_the_cap_is_refused_before_the_body(media_server, tmp_path):
    with LabelStudioClient(media_server) as client:
        started = time.monotonic()
        with pytest.raises(MediaRefused, match=r"52428800 bytes, over LSML_MEDIA_MAX_BYTES \(262144\)"):
            client.download(media_server + "/declared-huge.bin", tmp_path / "cache", max_bytes=CAP, timeout=30)
    assert time.monotonic() - started < 5
    assert nothing_cached(tmp_path / "cache")


def test_an_endless_body_stops_at_the_cap(media_server, tmp_path):
    with LabelStudioClient(media_server) as client:
        with pytest.raises(MediaRefused, match="over LSML_MEDIA_MAX_BYTES"):
            client.download(media_server + "/endless.bin", tmp_path / "cache", max_bytes=CAP, timeout=30)
    assert nothing_cached(tmp_path / "cache"), "no partial file is left behind"


def test_a_trickling_server_hits_the_overall_deadline(media_server, tmp_path):
    with LabelStudioClient(media_server, timeout=10) as client:  # each read is far below the read timeout
        started = time.monotonic()
        with pytest.raises(MediaRefused, match=r"not downloaded within LSML_MEDIA_TIMEOUT \(1s\)"):
            client.download(media_server + "/trickle.bin", tmp_path / "cache", max_bytes=CAP, timeout=1.0)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3, elapsed
    assert nothing_cached(tmp_path / "cache")


def test_models_download_with_the_configured_bounds(media_server, tmp_path, text_config):
    settings = Settings.from_env(
        # the loopback media server plays a public media host: private addresses allowed
        env={"LSML_MEDIA_MAX_BYTES": str(CAP), "LSML_MEDIA_TIMEOUT": "1", "LSML_MEDIA_ALLOW_PRIVATE": "true"},
        backend_dir=tmp_path,
    )
    assert (settings.media_max_bytes, settings.media_timeout) == (CAP, 1.0)
    model = build_model(CountingModel, "1", text_config, BuildContext(settings, make_state(settings), None))
    with pytest.raises(MediaRefused, match="LSML_MEDIA_MAX_BYTES"):
        model.get_local_path(media_server + "/endless.bin", ls_host=media_server)
    with pytest.raises(MediaRefused, match="LSML_MEDIA_TIMEOUT"):
        model.get_local_path(media_server + "/trickle.bin", ls_host=media_server)
