"""The reference example ``sklearn_text_classifier`` built by its own Dockerfile against lsml, in the test session.

What the build changes in the vendored, unmodified ``Dockerfile`` (``dockerfile_for_this_machine`` makes
exactly these edits and refuses to build if any one of them does not apply once):

1. the documented one-line change (docs/migrating-from-label-studio-ml-backend.md, "Docker images"):
   ``pip install -r requirements-base.txt`` becomes ``pip install "lsml[sdk]"``;
2. ``FROM python:${PYTHON_VERSION}-slim AS python-base`` names the local python stand-in instead (no
   image registry is reachable here);
3. the parser directive ``# syntax=docker/dockerfile:1`` is dropped: it names a frontend image on Docker
   Hub; the Docker engine's built-in frontend parses the rest, ``RUN --mount=type=cache`` included.

Everything else (the apt-get step, which installs git from Debian's mirror; ``requirements.txt``;
``COPY . .``; ENV; the gunicorn CMD) is the example's own, built with BuildKit (the Dockerfile's
``RUN --mount`` needs it) on hack/images' engine with the host network.

The python stand-in: lsml's local base (debootstrap bookworm, hack/images) plus a venv first on PATH, so
``python`` and ``pip`` are what they are in ``python:3.11-slim``, and an ``/etc/pip.conf`` that points pip
at this machine's package index the way a site's base image points it at an internal mirror: a wheelhouse
served over HTTP on the loopback for the length of the build. The wheelhouse is fetched once (cached by
content) from PyPI by pip in a throwaway container of the base with the host's CA bundle mounted
read-only (hack/images/wheels.py, as hack/images/build fetches its own); the CA bundle is in no image. The
lsml in it is this checkout's wheel: PyPI's ``lsml`` is an unrelated project, which the index, having only this one, cannot
hand out. The final image keeps the stand-in's ``/etc/pip.conf`` (a loopback URL, no credential).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import import_into_node

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tests" / "vendor" / "label_studio_ml_backend" / "examples" / "sklearn_text_classifier"
CACHE = Path(os.environ.get("LSML_IMAGES_CACHE", Path.home() / ".cache" / "lsml" / "images"))
#: Where the stand-in's pip looks for packages; the port stays fixed so the images stay cached across sessions.
INDEX_HOST, PREFERRED_PORT = "127.0.0.1", 38411

DOCUMENTED_OLD = "    pip install -r requirements-base.txt"
DOCUMENTED_NEW = '    pip install "lsml[sdk]"'
REFERENCE_FROM = "FROM python:${PYTHON_VERSION}-slim AS python-base"
SYNTAX_DIRECTIVE = "# syntax=docker/dockerfile:1"

STANDIN_DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# python and pip on PATH as in python:3.11-slim (Debian's python3-venv brings pip's wheel: no network)
RUN python3 -m venv /usr/local/python && /usr/local/python/bin/pip --version
ENV PATH=/usr/local/python/bin:$PATH
COPY pip.conf /etc/pip.conf
"""
LSML_SOURCES = ("pyproject.toml", "README.md", "runtime", "operator")
#: the versions the two resolutions below may pick (the suite's: hack/constraints/freeze says why): lsml[sdk]'s
#: as in .venv-compat, the example's (its pillow~=10.3) as in the torch layer, which installs the same two steps
CONSTRAINTS = {
    "sdk.txt": REPO / "hack" / "constraints" / "compat.txt",
    "example.txt": REPO / "hack" / "constraints" / "compat-torch.txt",
}


@functools.cache
def _hack_images(name: str):
    """A module of hack/images (the images' engine, the wheel helpers), which is no package."""
    spec = importlib.util.spec_from_file_location(f"lsml_images_{name}", REPO / "hack" / "images" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dockerfile_for_this_machine(original: str, python_image: str) -> str:
    """The example's Dockerfile with the three edits of the module doc, each applied exactly once."""
    lines = original.splitlines()
    edits = {
        DOCUMENTED_OLD: DOCUMENTED_NEW,
        REFERENCE_FROM: f"FROM {python_image} AS python-base",
        SYNTAX_DIRECTIVE: None,
    }
    for old in edits:
        count = sum(line == old for line in lines)
        if count != 1:
            pytest.fail(f"the example's Dockerfile has {count} lines {old!r}, expected one", pytrace=False)
    out = [edits[line] if line in edits else line for line in lines]
    return "\n".join(line for line in out if line is not None) + "\n"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((INDEX_HOST, port))
        except OSError:
            return False
    return True


def _run(argv: list[str], env: dict, what: str, timeout: float = 1800, **kwargs) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{what} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}", pytrace=False)


def _wheelhouse(docker: str, env: dict, base: str, key: str) -> Path:
    """lsml[sdk] (this checkout) and the example's requirements.txt as wheels for the base's python, made once."""
    target = CACHE / "reference-wheels" / key
    if target.is_dir():
        return target
    tmp = target.with_name(key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wheels").mkdir(parents=True)
    src = tmp / "src"
    src.mkdir()
    for name in LSML_SOURCES:  # a copy: pip builds the wheel in the source tree
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            )
        else:
            shutil.copy(REPO / name, src / name)
    shutil.copy(EXAMPLE / "requirements.txt", tmp / "requirements.txt")
    for name, path in CONSTRAINTS.items():
        shutil.copy(path, tmp / name)
    argv = [docker, *_hack_images("wheels").pip_container_args([f"{tmp}:/work"])]
    # two resolutions, as the Dockerfile's two `pip install` steps are: label-studio-sdk 2 wants Pillow>=12 and the
    # example pins pillow~=10.3, so its second step downgrades Pillow (pip says so and goes on)
    wheel = "/tmp/pip/bin/pip wheel --quiet --prefer-binary --wheel-dir /work/wheels"
    script = (
        f"python -m venv /tmp/pip && {wheel} -c /work/sdk.txt '/work/src[sdk]'"
        f" && {wheel} -c /work/example.txt -r /work/requirements.txt"
    )
    _run([*argv, base, "sh", "-c", script], env, "pip wheel of lsml[sdk] and the example's requirements")
    (tmp / "wheels").rename(target)
    shutil.rmtree(tmp)
    return target


@contextlib.contextmanager
def _serving(directory: Path, port: int) -> Iterator[None]:
    """The wheelhouse as a find-links page (http.server's directory listing) on the loopback."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((INDEX_HOST, port), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def build_and_import(images: dict[str, str], containerd_socket: Path) -> str:
    """The example image's reference, built (once per content) on the images' engine and imported into the node."""
    if "docker_host" not in images:
        pytest.fail("the reference example image needs hack/images/build's engine (docker_host=)", pytrace=False)
    docker = _hack_images("engine").docker_cli()  # Debian's 20.10 client: BuildKit without the buildx plugin
    env = {**os.environ, "DOCKER_HOST": images["docker_host"], "DOCKER_BUILDKIT": "0"}
    base = images["base"]
    requirements = (EXAMPLE / "requirements.txt").read_text()
    keys = _hack_images("wheels")
    sources = keys.tree_digest(REPO, list(LSML_SOURCES))
    wheel_key = keys.digest(base, requirements, sources, *(p.read_text() for p in CONSTRAINTS.values()))
    port = PREFERRED_PORT if _free(PREFERRED_PORT) else 0
    if port == 0:
        with socket.socket() as probe:
            probe.bind((INDEX_HOST, 0))
            port = probe.getsockname()[1]
    pip_conf = f"[global]\nno-index = true\nfind-links = http://{INDEX_HOST}:{port}/\n"
    standin = f"lsml.local/python-standin:{keys.digest(base, STANDIN_DOCKERFILE, pip_conf)}"
    dockerfile = dockerfile_for_this_machine((EXAMPLE / "Dockerfile").read_text(), standin)
    example = keys.tree_digest(EXAMPLE, ["."])
    ref = f"lsml.local/sklearn-text-classifier-reference:{keys.digest(standin, wheel_key, dockerfile, example)}"

    def exists(image: str) -> bool:
        return subprocess.run([docker, "image", "inspect", image], env=env, capture_output=True).returncode == 0

    if not exists(ref):
        wheelhouse = _wheelhouse(docker, env, base, wheel_key)
        if not exists(standin):
            with tempfile.TemporaryDirectory(prefix="lsml-standin-") as context:
                Path(context, "Dockerfile").write_text(STANDIN_DOCKERFILE)
                Path(context, "pip.conf").write_text(pip_conf)
                _run(
                    [docker, "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}", "-t", standin, context],
                    env,
                    f"docker build of {standin}",
                )
        with tempfile.TemporaryDirectory(prefix="lsml-reference-") as context:
            shutil.copytree(EXAMPLE, context, dirs_exist_ok=True)
            Path(context, "Dockerfile").write_text(dockerfile)
            with _serving(wheelhouse, port):
                _run(
                    [docker, "build", "--network", "host", "--progress", "plain", "-t", ref, context],
                    {**env, "DOCKER_BUILDKIT": "1"},
                    f"docker build of {ref} (the example's Dockerfile)",
                )
    import_into_node(docker, env, ref, containerd_socket)
    return ref
