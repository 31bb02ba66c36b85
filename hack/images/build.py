"""Builds lsml's images without any image registry; see hack/images/build for usage.

Why this shape: no registry is reachable from the machines this runs on, so the python base
is made locally (debootstrap), and pip inside `docker build` gets no index either: the
dependencies are fetched once on the host into a wheelhouse (the host's pip has the CA bundle,
which must not end up in an image) and installed from it with --no-index. The wheelhouse
reaches the build stages only through a build image (BUILD_IMAGE build argument), so final
images carry neither wheels nor pip settings. Every image is tagged with a content hash of its
inputs; when all tags exist the run does nothing but print them.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine  # noqa: E402 - sibling module of this script
from wheels import digest, pip_container_args, tree_digest  # noqa: E402 - likewise

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("LSML_IMAGES_CACHE", Path.home() / ".cache" / "lsml" / "images"))
EXAMPLE = REPO / "examples" / "text_classifier"
#: the versions pip may pick (the suite's: hack/constraints/freeze says why); a package it does not name, e.g.
#: async-timeout, which the image's Python 3.11.2 needs for redis and the host's 3.11.7 does not, stays free
CONSTRAINTS = REPO / "hack" / "constraints" / "dev.txt"
# The local stand-in for python:3.11-slim-bookworm: what our Dockerfiles use of it.
BASE_RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "mirror": "http://deb.debian.org/debian",
    "include": ["python3", "python3-venv", "python-is-python3"],
    "recipe": 1,  # bump when base() changes what it makes
}
PAUSE_TAG = "lsml.local/pause:3.10"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def context_names() -> list[str]:
    """The root build context: the `!` lines of .dockerignore, so the hash follows what COPY sees."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def requirements() -> list[str]:
    """Everything pip installs in the builds: lsml's deps, the operator extra, the example's, build deps."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = list(project["build-system"]["requires"]) + list(project["project"]["dependencies"])
    reqs += project["project"]["optional-dependencies"]["operator"]
    for line in (EXAMPLE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(line)
    return sorted(set(reqs))


@dataclass
class Docker:
    host: str
    env: dict = field(init=False)

    def __post_init__(self) -> None:
        # the classic builder: BuildKit would fetch the `# syntax=` frontend image from a registry
        self.env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_BUILDKIT="0")

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([engine.docker_cli(), *args], env=self.env, check=True, **kwargs)

    def exists(self, ref: str) -> bool:
        return (
            subprocess.run(
                [engine.docker_cli(), "image", "inspect", ref],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).returncode
            == 0
        )

    def build(
        self,
        tag: str,
        context: Path,
        dockerfile: Path,
        network: str = "none",
        target: str | None = None,
        **build_args: str,
    ) -> None:
        argv = ["build", "--force-rm", "--network", network, "--file", str(dockerfile), "--tag", tag]
        if target:
            argv += ["--target", target]
        for key, value in build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        log(f"building {tag}")
        started = time.monotonic()
        result = subprocess.run(
            [engine.docker_cli(), *argv, str(context)],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if result.returncode != 0:
            raise SystemExit(f"docker build of {tag} failed:\n" + "\n".join(result.stdout.splitlines()[-40:]))
        log(f"built {tag} in {time.monotonic() - started:.0f} s")


@dataclass
class Plan:
    """Every image's reference, from hashes of its inputs (computed without building anything)."""

    base: str
    wheel_key: str
    build_base: str
    runtime: str
    operator: str
    runtime_build: str
    text_classifier: str
    redis: str
    pause: str

    @classmethod
    def make(cls) -> Plan:
        base_key = digest(BASE_RECIPE)
        wheel_key = digest(base_key, requirements(), CONSTRAINTS.read_text())
        lsml_key = digest(base_key, wheel_key, tree_digest(REPO, ["Dockerfile", ".dockerignore", *context_names()]))
        example_key = digest(lsml_key, tree_digest(EXAMPLE, [p.name for p in EXAMPLE.iterdir()]))
        return cls(
            base=f"lsml.local/base:{base_key}",
            wheel_key=wheel_key,
            build_base=f"lsml.local/build-base:{digest(base_key, wheel_key)}",
            runtime=f"lsml/runtime:{lsml_key}",
            operator=f"lsml/operator:{lsml_key}",
            runtime_build=f"lsml.local/runtime-build:{lsml_key}",
            text_classifier=f"lsml/text-classifier:{example_key}",
            redis=f"lsml.local/redis:{digest(base_key, (HERE / 'redis.Dockerfile').read_bytes())}",
            pause=f"lsml.local/pause:{digest(base_key, (HERE / 'pause.Dockerfile').read_bytes())}",
        )

    def products(self) -> dict[str, str]:
        """What the script prints, name=ref; `helper` is the busybox-like image for helper pods."""
        return {
            "base": self.base,
            "helper": self.base,
            "pause": PAUSE_TAG,
            "redis": self.redis,
            "runtime": self.runtime,
            "operator": self.operator,
            "text_classifier": self.text_classifier,
            "runtime_build": self.runtime_build,
        }

    def aliases(self) -> dict[str, list[str]]:
        """Fixed tags that manifests and charts name (examples/mlbackend.yaml, the chart's appVersion)."""
        app_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
        return {
            self.base: ["lsml.local/base:latest"],
            self.pause: [PAUSE_TAG],
            self.redis: ["lsml.local/redis:latest"],
            self.runtime: ["lsml/runtime:latest"],
            self.operator: ["lsml/operator:latest", f"lsml/operator:{app_version}"],
            self.text_classifier: ["lsml/text-classifier:latest"],
        }

    def all_refs(self) -> list[str]:
        """The content-addressed refs: when all exist, nothing needs building."""
        return [
            self.base,
            self.build_base,
            self.runtime,
            self.operator,
            self.runtime_build,
            self.text_classifier,
            self.redis,
            self.pause,
        ]


def make_base(docker: Docker, ref: str) -> None:
    """debootstrap a minimal bookworm with python3 and import it (about 30 s on a warm mirror)."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise SystemExit("debootstrap not found: run hack/install-system-deps.sh")
    rootfs = CACHE / "rootfs.tmp"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {BASE_RECIPE['suite']} into {rootfs}")
    started = time.monotonic()
    subprocess.run(
        [
            "debootstrap",
            f"--variant={BASE_RECIPE['variant']}",
            "--include=" + ",".join(BASE_RECIPE["include"]),
            BASE_RECIPE["suite"],
            str(rootfs),
            BASE_RECIPE["mirror"],
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / junk).glob("*"):
            if path.is_file():
                path.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    docker.run(
        "import",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["bash"]',
        "-",
        ref,
        stdin=tar.stdout,
        stdout=subprocess.DEVNULL,
    )
    if tar.wait() != 0:
        raise SystemExit("tar of the debootstrap rootfs failed")
    shutil.rmtree(rootfs)
    log(f"made {ref} in {time.monotonic() - started:.0f} s")


def wheelhouse(docker: Docker, key: str, base: str) -> Path:
    """The dependency wheels, fetched once per requirement set by pip running on the base's python.

    pip runs in a throwaway container of the base image (``wheels.pip_container_args`` says how and why).
    """
    target = CACHE / "wheelhouse" / key
    if target.is_dir():
        return target
    tmp = target.with_name(key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    argv = pip_container_args([f"{tmp}:/wheels", f"{CONSTRAINTS}:/constraints.txt:ro"])
    script = (
        "python -m venv /tmp/pip && /tmp/pip/bin/pip wheel --quiet --prefer-binary --constraint /constraints.txt "
        "--wheel-dir /wheels " + " ".join(shlex.quote(r) for r in requirements())
    )
    log(f"pip wheel into {target}")
    started = time.monotonic()
    docker.run(*argv, base, "sh", "-c", script)
    log(f"made the wheelhouse in {time.monotonic() - started:.0f} s")
    tmp.rename(target)
    return target


def build_all(docker: Docker, plan: Plan) -> None:
    if not docker.exists(plan.base):
        make_base(docker, plan.base)
    overlay = HERE / "wheels.Dockerfile"
    if not docker.exists(plan.build_base):
        docker.build(plan.build_base, wheelhouse(docker, plan.wheel_key, plan.base), overlay, FROM_IMAGE=plan.base)
    lsml_args = {"PYTHON_IMAGE": plan.base, "BUILD_IMAGE": plan.build_base}
    if not docker.exists(plan.operator):
        docker.build(plan.operator, REPO, REPO / "Dockerfile", target="operator", **lsml_args)
    if not docker.exists(plan.runtime):
        docker.build(plan.runtime, REPO, REPO / "Dockerfile", **lsml_args)
    if not docker.exists(plan.runtime_build):
        docker.build(
            plan.runtime_build, wheelhouse(docker, plan.wheel_key, plan.base), overlay, FROM_IMAGE=plan.runtime
        )
    if not docker.exists(plan.text_classifier):
        docker.build(
            plan.text_classifier,
            EXAMPLE,
            EXAMPLE / "Dockerfile",
            LSML_IMAGE=plan.runtime,
            BUILD_IMAGE=plan.runtime_build,
        )
    if not docker.exists(plan.redis):  # apt-get needs the mirror: the one build with a network
        docker.build(plan.redis, HERE, HERE / "redis.Dockerfile", network="host", BASE_IMAGE=plan.base)
    if not docker.exists(plan.pause):
        docker.build(plan.pause, HERE, HERE / "pause.Dockerfile", BASE_IMAGE=plan.base)


def import_to(docker: Docker, plan: Plan, socket: str) -> None:
    """Loads the images into a containerd (CRI namespace k8s.io), for pods with imagePullPolicy Never."""
    refs = [*plan.products().values()] + [a for names in plan.aliases().values() for a in names]
    refs = [r for r in dict.fromkeys(refs) if r != plan.runtime_build]
    log(f"importing {len(refs)} references into containerd at {socket}")
    save = subprocess.Popen([engine.docker_cli(), "save", *refs], env=docker.env, stdout=subprocess.PIPE)
    ctr = subprocess.run(
        ["ctr", "-a", socket, "-n", "k8s.io", "images", "import", "-"], stdin=save.stdout, stdout=subprocess.DEVNULL
    )
    if save.wait() != 0 or ctr.returncode != 0:
        raise SystemExit(f"import into {socket} failed (docker save {save.returncode}, ctr {ctr.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/images/build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--import-to", metavar="SOCKET", help="containerd socket to import the images into")
    args = parser.parse_args(argv)
    started = time.monotonic()
    # one build at a time per machine: worktrees and test sessions share the engine, the base's
    # rootfs directory and the wheelhouse (a second run waits, then finds the images made)
    CACHE.mkdir(parents=True, exist_ok=True)
    lock = open(CACHE / "build.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for another hack/images/build ({CACHE / 'build.lock'})")
        fcntl.flock(lock, fcntl.LOCK_EX)
    docker = Docker(engine.ensure())
    plan = Plan.make()
    missing = [ref for ref in plan.all_refs() if not docker.exists(ref)]
    if missing:
        build_all(docker, plan)
    for ref, names in plan.aliases().items():
        for name in names:
            docker.run("tag", ref, name)
    if args.import_to:
        import_to(docker, plan, args.import_to)
    log(f"images {'built' if missing else 'up to date'} in {time.monotonic() - started:.1f} s")
    print(f"docker_host={docker.host}")
    for name, ref in plan.products().items():
        print(f"{name}={ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
