"""Task media (images, audio, text files) fetched once and kept on disk.

Tasks name their media in three ways: an absolute http(s) URL anywhere,
`/data/upload/<project>/<file>` (files imported into Label Studio) and
`/data/local-files/?d=<path>` (Label Studio's local file serving). Only the
last two, and absolute URLs pointing at Label Studio itself, get Label
Studio's token: sending it to a third-party host would leak it.

Every download is bounded: `LSML_MEDIA_MAX_BYTES` (the declared length is
checked first, then the bytes as they arrive) and `LSML_MEDIA_TIMEOUT`, a
deadline for the whole download enforced by a timer that shuts the socket
down, so a server trickling one byte at a time cannot hold a worker.

The cache is keyed by a hash of the URL (the same URL always names the same
bytes in Label Studio) and files are written to a temporary name then
renamed, so a crash or a concurrent download never leaves a half file that a
later call would trust.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import urllib3

from lsml.labelstudio.errors import LabelStudioError
from lsml.labelstudio.transport import Transport
from lsml.settings import Settings

_CHUNK = 1 << 16
_SUFFIX_MAX = 10
DEFAULT_MAX_BYTES: int = Settings.media_max_bytes
DEFAULT_TIMEOUT: float = Settings.media_timeout


class MediaRefused(LabelStudioError):
    """A media download over its size cap or past its deadline; nothing was cached."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)

    def __str__(self) -> str:
        return self.message


def cache_path(url: str, cache_dir: Path) -> Path:
    """Where `url`'s bytes live in `cache_dir`: its hash, plus its suffix so tools can sniff the type."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    return Path(cache_dir) / f"{digest}{_suffix(url)}"


def _suffix(url: str) -> str:
    parsed = urlparse(url)
    path = parsed.path
    if parsed.path.rstrip("/").endswith("/data/local-files") or "d=" in parsed.query:
        # /data/local-files/?d=dir/img.png: the file name is in the query.
        for part in parsed.query.split("&"):
            if part.startswith("d="):
                path = unquote(part[2:])
    suffix = posixpath.splitext(path)[1].lower()
    if len(suffix) > _SUFFIX_MAX or not suffix[1:].isalnum():
        return ""
    return suffix


class MediaMixin(Transport):
    def download(
        self, url: str, cache_dir: str | os.PathLike[str], *, max_bytes: int | None = None, timeout: float | None = None
    ) -> Path:
        """The local path of `url`'s bytes, downloading them unless already cached.

        `max_bytes` (default `LSML_MEDIA_MAX_BYTES`'s) caps the size and
        `timeout` (default `LSML_MEDIA_TIMEOUT`'s) the whole download, not
        each read: a huge body or a server trickling bytes raises
        `MediaRefused` and leaves nothing in the cache.
        """
        if not url:
            raise ValueError("empty media URL")
        if url.startswith(("s3://", "gs://", "azure-blob://")):
            raise LabelStudioError(
                None,
                f"cloud storage URL {url.split('?')[0]!r} cannot be fetched directly; "
                "enable 'Use pre-signed URLs' on the Label Studio storage or pass the task's resolved URL",
            )
        absolute = self.absolute_url(url)
        if not absolute.startswith(("http://", "https://")):
            raise ValueError(f"unsupported media URL {url!r}")
        directory = Path(cache_dir)
        target = cache_path(absolute, directory)
        if target.is_file():
            return target
        directory.mkdir(parents=True, exist_ok=True)
        limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
        total = DEFAULT_TIMEOUT if timeout is None else timeout
        shown = absolute.split("?")[0]  # a pre-signed URL's query is a credential
        deadline = time.monotonic() + total
        response = self.request(
            "GET",
            absolute,
            stream=True,
            authenticate=self.is_own_url(absolute),
            timeout=min(self.timeout, total),
            media=True,
        )
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=target.suffix)
        expired = threading.Event()

        def expire() -> None:  # interrupts a read blocked on a trickling server
            expired.set()
            response.raw.shutdown()

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        watchdog.daemon = True
        try:
            with os.fdopen(fd, "wb") as out, response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise MediaRefused(f"media {shown!r} is {int(declared)} bytes, over LSML_MEDIA_MAX_BYTES ({limit})")
                watchdog.start()
                received = 0
                try:
                    for chunk in response.iter_content(_CHUNK):
                        received += len(chunk)
                        if received > limit:
                            raise MediaRefused(f"media {shown!r} is over LSML_MEDIA_MAX_BYTES ({limit} bytes)")
                        if expired.is_set():
                            break
                        out.write(chunk)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
                    if not expired.is_set():
                        raise
                if expired.is_set():
                    raise MediaRefused(f"media {shown!r} not downloaded within LSML_MEDIA_TIMEOUT ({total:g}s)")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
        finally:
            watchdog.cancel()
        return target
