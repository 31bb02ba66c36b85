"""The image layer's pieces: hack/images/build run from a test, its images and a docker CLI bound to the
engine that holds them, and the containers one test starts.

Needs root, Debian's docker.io (dockerd + CLI), debootstrap and docker-compose
(hack/install-system-deps.sh installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "images" / "build"
REQUIRED = {
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
    "docker-compose": "docker-compose",
    "ctr": "containerd",
}


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
        result = subprocess.run([docker_cli(), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def ip_of(self, container: str, network: str) -> str:
        return self.docker(
            "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', container
        ).stdout.strip()


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

    def exited(self, name: str) -> str | None:
        """None while the container runs, else its logs (what `wait_http(died=...)` reports)."""
        running = self.images.docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
        return None if running == "true" else self.logs(name)

    def logs(self, name: str) -> str:
        result = self.images.docker("logs", name, check=False)
        return result.stdout + result.stderr

    def remove_all(self) -> None:
        for name in self.names:
            self.images.docker("rm", "-f", "-v", name, check=False)
