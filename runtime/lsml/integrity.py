"""SHA-256 of every artifact of a model version, recorded at publish and checked before a model loads it.

Why: a model's `setup()` loads its artifacts (joblib/pickle files, weights)
from the version dir, and unpickling runs code: a version that was changed
after it was published, or copied only in part (a volume restored halfway, a
file truncated by a full disk), must be refused before `setup()` sees it,
with an error that names the file. The digests live in the version's
`lsml-version.json` (`"files": {path: {"sha256", "size"}}`), next to the
artifacts, so they catch corruption, half copies and edits of the artifacts;
they are not a signature against someone who can rewrite that file too (the
model volume stays trusted: see SECURITY.md).

An unexpected file (in the dir but not recorded) is refused as well: models
commonly load whatever matches a pattern (`*.pkl`), so an added file is as
dangerous as a changed one. A version published before digests were recorded
(no `"files"`) is loaded with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from lsml.errors import LsmlError

logger = logging.getLogger(__name__)

VERSION_FILE = "lsml-version.json"
_CHUNK = 1 << 20


class VersionIntegrityError(LsmlError):
    """A published version whose files do not match the digests recorded when it was published."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[str]:
    """Every file below `root` (relative, '/'-separated), the version file excepted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            relative = (Path(dirpath) / name).relative_to(root).as_posix()
            if relative != VERSION_FILE:
                found.append(relative)
    return sorted(found)


def digest_tree(root: Path) -> dict[str, dict]:
    """`{relative path: {"sha256", "size"}}` of every artifact in a staged version dir."""
    root = Path(root)
    return {rel: {"sha256": _sha256(root / rel), "size": (root / rel).stat().st_size} for rel in _files(root)}


def verify_version(path: Path, name: str = "") -> None:
    """Raise VersionIntegrityError unless the dir's files are exactly the recorded ones, byte for byte."""
    path = Path(path)
    label = f"model version {name or path.name}"
    try:
        with open(path / VERSION_FILE, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise VersionIntegrityError(f"{label} has no {VERSION_FILE} (a partial copy?); refusing to load it") from None
    except (OSError, ValueError) as exc:
        raise VersionIntegrityError(
            f"{label}: {VERSION_FILE} is unreadable ({type(exc).__name__}); refusing to load it"
        ) from None
    recorded = info.get("files") if isinstance(info, dict) else None
    if recorded is None:
        logger.warning("%s was published without file digests: its artifacts are not verified", label)
        return
    if not isinstance(recorded, dict):
        raise VersionIntegrityError(f"{label}: 'files' in {VERSION_FILE} is not an object; refusing to load it")
    present = set(_files(path))
    missing = sorted(set(recorded) - present)
    if missing:
        raise VersionIntegrityError(
            f"{label} is missing {', '.join(missing[:5])} (a partial copy?); refusing to load it"
        )
    unexpected = sorted(present - set(recorded))
    if unexpected:
        raise VersionIntegrityError(
            f"{label} holds files it was not published with: {', '.join(unexpected[:5])}; refusing to load it"
        )
    for rel in sorted(recorded):
        expected = recorded[rel] if isinstance(recorded[rel], dict) else {}
        size = (path / rel).stat().st_size
        if expected.get("size") is not None and size != expected["size"]:
            raise VersionIntegrityError(
                f"{label}: {rel} is {size} bytes, published as {expected['size']} "
                "(truncated or changed); refusing to load it"
            )
        if _sha256(path / rel) != expected.get("sha256"):
            raise VersionIntegrityError(
                f"{label}: {rel} does not match the SHA-256 recorded at publish "
                "(changed after publishing); refusing to load it"
            )
