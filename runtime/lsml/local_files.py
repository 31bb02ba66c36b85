"""Which local files task data may make a model read: none, unless they lie under LSML_LOCAL_FILES_ROOTS.

Task data comes from whoever can call `/predict` or create tasks in Label
Studio. A `get_local_path` that returned any existing path and any `file://`
URL would let a task `{"text": "file:///etc/hostname"}` make a model read
(and often echo back) that file (SECURITY.md). So local access is opt-in:
the path, with symlinks and `..` resolved first, must lie under one of the
configured roots. Label Studio's own `/data/local-files/?d=` URLs are not
local paths: they go through its API with its token.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lsml.errors import LsmlError


class LocalFileRefused(LsmlError, PermissionError):
    """Task data named a local file this backend is not configured to read."""


def file_url_path(url: str) -> str:
    """The path of a `file://` URL (`file:///a/b`, `file://localhost/a/b`); ValueError for another host."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise LocalFileRefused(f"file URL {url!r} names host {parts.netloc!r}: only local files can be read")
    return unquote(parts.path)


def confined(path: str | os.PathLike[str], roots: Iterable[Path]) -> Path:
    """`path` resolved (symlinks, `..`), if it lies under one of `roots`; else LocalFileRefused saying what to set."""
    roots = tuple(roots)
    if not roots:
        raise LocalFileRefused(
            f"task data names the local file {str(path)!r}, and reading local files is off: set "
            "LSML_LOCAL_FILES_ROOTS to the directories tasks may name (or serve the files through Label "
            "Studio: /data/local-files/?d=... or an upload)"
        )
    resolved = Path(path).resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    raise LocalFileRefused(
        f"task data names the local file {str(path)!r}, which is outside LSML_LOCAL_FILES_ROOTS "
        f"({os.pathsep.join(str(r) for r in roots)})"
    )
