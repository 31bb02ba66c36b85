"""What the image builds share (hack/images/build.py, tests/realnode/reference_example_image.py): content keys,
and pip run in a throwaway container of the base image to fetch a wheelhouse.

pip runs on the image's own python, so wheels and environment markers match it (redis needs async-timeout on
Debian's 3.11.2, not on the host's 3.11.7); with the host network, the host's pip cache, and the host's CA
bundle mounted read-only, which so stays out of every image; a site's package index (``PIP_INDEX_URL``,
``PIP_EXTRA_INDEX_URL``) is passed on.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path

#: never part of a content key: caches and local data
SKIP_NAMES = ("__pycache__", "*.pyc", ".pytest_cache", "data", "logs", ".venv")


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(root: Path, names: list[str]) -> str:
    """Content hash of files (paths + bytes) under root, skipping caches and local data."""
    h = hashlib.sha256()
    for name in sorted(names):
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(root)
            if any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in SKIP_NAMES):
                continue
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pip_container_args(mounts: list[str]) -> list[str]:
    """``docker run`` arguments (before the image) for pip in a throwaway container; ``mounts``: ``-v`` values."""
    cert = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    pip_cache = Path.home() / ".cache" / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    argv = ["run", "--rm", "--network", "host", "-v", f"{pip_cache}:/pip-cache"]
    for mount in mounts:
        argv += ["-v", mount]
    argv += ["-e", "PIP_CACHE_DIR=/pip-cache", "-e", "PIP_DISABLE_PIP_VERSION_CHECK=1"]
    if Path(cert).is_file():
        argv += ["-v", f"{cert}:/host-ca.crt:ro", "-e", "PIP_CERT=/host-ca.crt"]
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if os.environ.get(name):
            argv += ["-e", f"{name}={os.environ[name]}"]
    return argv
