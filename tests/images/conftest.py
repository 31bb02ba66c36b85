"""The image layer: hack/images/build runs once per session; tests run its images for real.

Needs root, Debian's docker.io (dockerd + CLI), debootstrap and docker-compose
(hack/install-system-deps.sh installs them). A missing piece fails the session loudly:
these tests never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "images" / "build"
REQUIRED = {"dockerd": "docker.io", "debootstrap": "debootstrap", "docker-compose": "docker-compose",
            "ctr": "containerd"}


def docker_cli() -> str:
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")


def parse_refs(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line)


def run_build(*args: str, timeout: float = 1500) -> tuple[dict[str, str], float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = subprocess.run([str(BUILD), *args], capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        pytest.fail(f"hack/images/build {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return parse_refs(result.stdout), elapsed, result


@dataclass
class Images:
    """The session's images (name -> ref) and a docker CLI bound to the engine that holds them."""
    refs: dict[str, str]
    build_seconds: float

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.refs["docker_host"], DOCKER_BUILDKIT="0")

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([docker_cli(), *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def ip_of(self, container: str, network: str) -> str:
        return self.docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                           container).stdout.strip()


@pytest.fixture(scope="session")
def images() -> Images:
    if os.geteuid() != 0:
        pytest.fail("the image tests need root (dockerd, debootstrap): run them as root, as hack/test does in CI")
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in REQUIRED.items()
               if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    if missing:
        pytest.fail("missing for the image tests: " + ", ".join(missing) + "; run hack/install-system-deps.sh")
    refs, seconds, _ = run_build()
    for name in ("docker_host", "base", "helper", "pause", "redis", "runtime", "operator", "text_classifier",
                 "runtime_build"):
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


class Containers:
    """Containers a test starts, removed at its end; their logs go into the failure message."""

    def __init__(self, images: Images, network: str) -> None:
        self.images = images
        self.network = network
        self.names: list[str] = []

    def run(self, image: str, *args: str, publish: int | None = None, options: tuple[str, ...] = ()) -> str:
        name = f"lsml-test-{uuid.uuid4().hex[:8]}"
        argv = ["run", "-d", "--name", name, "--network", self.network, "--read-only", "--tmpfs", "/tmp", *options]
        if publish:
            from tests.fixtures.ports import free_port

            self.host_port = free_port()
            argv += ["--publish", f"127.0.0.1:{self.host_port}:{publish}"]
        self.images.docker(*argv, image, *args)
        self.names.append(name)
        return name

    def logs(self, name: str) -> str:
        result = self.images.docker("logs", name, check=False)
        return result.stdout + result.stderr

    def remove_all(self) -> None:
        for name in self.names:
            self.images.docker("rm", "-f", "-v", name, check=False)


@pytest.fixture
def containers(images: Images, network: str) -> Iterator[Containers]:
    made = Containers(images, network)
    try:
        yield made
    finally:
        made.remove_all()


def wait_http(url: str, timeout: float, what: str, alive=lambda: True) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), f"{what}: the container exited"
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} at {url}")
        time.sleep(0.3)
