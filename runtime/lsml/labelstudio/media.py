"""Task media (images, audio, text files) fetched once and kept on disk.

Tasks name their media in three ways: an absolute http(s) URL anywhere,
`/data/upload/<project>/<file>` (files imported into Label Studio) and
`/data/local-files/?d=<path>` (Label Studio's local file serving). Only the
last two, and absolute URLs pointing at Label Studio itself, get Label
Studio's token: sending it to a third-party host would leak it.

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
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsml.labelstudio.errors import LabelStudioError
from lsml.labelstudio.transport import Transport

_CHUNK = 1 << 16
_SUFFIX_MAX = 10


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
    def download(self, url: str, cache_dir: str | os.PathLike[str]) -> Path:
        """The local path of `url`'s bytes, downloading them unless already cached."""
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
        response = self.request("GET", absolute, stream=True, authenticate=self.is_own_url(absolute))
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as out, response:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
        return target
