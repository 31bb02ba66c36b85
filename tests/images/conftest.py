"""The image layer: hack/images/build runs once per session; tests run its images for real.

Needs root, Debian's docker.io (dockerd + CLI), debootstrap and docker-compose
(hack/install-system-deps.sh installs them). A missing piece fails the session loudly:
these tests never skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images.engine import REQUIRED, Containers, Images, run_build


@pytest.fixture(scope="session")
def images() -> Images:
    if os.geteuid() != 0:
        pytest.fail("the image tests need root (dockerd, debootstrap): run them as root, as hack/test does in CI")
    missing = [
        f"{tool} (Debian package {pkg})"
        for tool, pkg in REQUIRED.items()
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()
    ]
    if missing:
        pytest.fail("missing for the image tests: " + ", ".join(missing) + "; run hack/install-system-deps.sh")
    refs, seconds, _ = run_build()
    for name in (
        "docker_host",
        "base",
        "helper",
        "pause",
        "redis",
        "runtime",
        "operator",
        "text_classifier",
        "runtime_build",
    ):
        assert refs.get(name), f"hack/images/build printed no {name}= line: {refs}"
    return Images(refs, seconds)


@pytest.fixture
def network(images: Images) -> Iterator[str]:
    """A user-defined bridge network of this test (the private dockerd has no default bridge)."""
    name = f"lsml-test-{uuid.uuid4().hex[:8]}"
    images.docker("network", "create", name)
    try:
        yield name
    finally:
        images.docker("network", "rm", name, check=False)


@pytest.fixture
def containers(images: Images, network: str) -> Iterator[Containers]:
    made = Containers(images, network)
    try:
        yield made
    finally:
        made.remove_all()
