"""lsml's images, run for real the way the operator runs them: read-only root, /tmp a tmpfs, uid 10001."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import tomllib

from tests.fixtures.label_studio import SENTIMENT_CONFIG
from tests.fixtures.polling import wait_for, wait_http
from tests.fixtures.rq_procs import write_backend
from tests.images.engine import REPO, run_build

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]  # a cold session build: several minutes


TASKS = [{"id": 1, "data": {"text": "what a lovely day"}}, {"id": 2, "data": {"text": "awful, just awful"}}]


def serves_the_protocol(url: str) -> dict:
    """/setup then /predict of two tasks, as Label Studio sends them; returns the /setup answer."""
    setup = requests.post(url + "/setup", json={"project": "1.1700000000", "schema": SENTIMENT_CONFIG}, timeout=10)
    assert setup.status_code == 200, setup.text
    predict = requests.post(
        url + "/predict", json={"tasks": TASKS, "project": "1.1700000000", "label_config": SENTIMENT_CONFIG}, timeout=10
    )
    assert predict.status_code == 200, predict.text
    results = predict.json()["results"]
    assert len(results) == len(TASKS), results  # one item per task, in order
    for result in results:
        # a prediction of the version /setup named, or [] where an untrained model has none to give
        # (Label Studio then stores nothing: the no-empty-predictions rule)
        assert result == [] or result["model_version"] == setup.json()["model_version"], results
    return setup.json()


def booted_workers(log: str) -> int:
    return log.count("Booting worker with pid")


def test_backend_image_serves_under_a_read_only_root_with_one_worker_and_no_error(images, containers):
    """The gunicorn 27 control socket ([ERROR] ... Read-only file system: '/home/lsml') and the
    WORKERS=2 default with embedded training were both defects of the image's CMD."""
    name = containers.run(images.refs["text_classifier"], publish=9090)
    url = f"http://127.0.0.1:{containers.host_port}"
    health = wait_http(url + "/health", 90, "the text_classifier image", died=lambda: containers.exited(name))
    assert health.json() == {"status": "UP", "model_class": "TextClassifier"}
    serves_the_protocol(url)
    log = containers.logs(name)
    assert "[ERROR]" not in log and "Traceback" not in log, log
    assert booted_workers(log) == 1, f"no REDIS_URL: one gunicorn worker (embedded training)\n{log}"
    user = images.docker("exec", name, "python", "-c", "import os; print(os.getuid())").stdout.strip()
    assert user == "10001"


def test_runtime_image_serves_a_mounted_backend_with_two_workers_when_redis_is_set(images, containers, tmp_path):
    backend = write_backend(tmp_path / "backend")
    for path in [backend, *backend.iterdir()]:  # readable by the image's uid 10001
        path.chmod(0o755 if path.is_dir() else 0o644)
    redis = containers.run(images.refs["redis"])  # Debian's redis-server image, by container name
    name = containers.run(
        images.refs["runtime"],
        publish=9090,
        options=("-v", f"{backend}:/app:ro", "-e", f"REDIS_URL=redis://{redis}:6379/0"),
    )
    url = f"http://127.0.0.1:{containers.host_port}"
    assert (
        wait_http(url + "/health", 90, "the runtime image", died=lambda: containers.exited(name)).json()["model_class"]
        == "Counter"
    )
    serves_the_protocol(url)
    log = containers.logs(name)
    assert "[ERROR]" not in log, log
    assert booted_workers(log) == 2, f"REDIS_URL set: two gunicorn workers\n{log}"


def test_operator_image_runs_as_uid_10001_under_a_read_only_root(images):
    ref = images.refs["operator"]
    result = images.docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", ref, "--help")
    assert "MLBackend" in result.stdout, result.stdout + result.stderr
    uid = images.docker(
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "python",
        ref,
        "-c",
        "import os, lsml_operator; print(os.getuid())",
    ).stdout.strip()
    assert uid == "10001"
    assert images.docker("image", "inspect", "-f", "{{.Config.User}}", ref).stdout.strip() == "10001"


def test_redis_image_serves_other_containers_with_aof_as_uid_999(images, containers):
    """As the compose file runs it (entrypoint kept) and as the operator does (command replaced,
    read-only root, uid 999 like the official image, AOF under /data)."""
    compose_style = containers.run(
        images.refs["redis"], "redis-server", "--appendonly", "yes", options=("--volume", "/data")
    )  # a fresh volume takes the image's /data owner
    operator_style = containers.run(
        images.refs["redis"],
        "--appendonly",
        "yes",
        "--dir",
        "/data",
        "--protected-mode",
        "no",
        options=("--entrypoint", "redis-server", "--user", "999:999", "--tmpfs", "/data:uid=999,gid=999"),
    )
    for name in (compose_style, operator_style):

        def cli(*args: str) -> str:
            return images.docker(
                "run",
                "--rm",
                "--network",
                containers.network,
                "--entrypoint",
                "redis-cli",
                images.refs["redis"],
                "-h",
                name,
                *args,
                check=False,
            ).stdout.strip()

        wait_for(
            lambda: cli("ping"),
            30,
            0.3,
            what=f"redis in {name} to answer PING",
            until=lambda answer: answer == "PONG",
            diagnose=lambda: containers.logs(name),
        )
        assert cli("set", "k", "v") == "OK" and cli("get", "k") == "v", "a client from another container"
        assert cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
        uid = images.docker("exec", name, "sh", "-c", "id -u; ls /data").stdout.split()
        assert uid[0] == "999" and any(f.startswith("appendonly") for f in uid[1:]), uid


def test_pause_and_helper_images(images, containers):
    # the sandbox image sleeps until told to stop, and stops at once on SIGTERM
    name = containers.run(images.refs["pause"])
    time.sleep(1)
    assert images.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    started = time.monotonic()
    images.docker("stop", "-t", "20", name)
    assert time.monotonic() - started < 10, "the pause image must exit on SIGTERM, not wait for SIGKILL"
    # local-path-provisioner's helper pods run sh -c with mkdir/rm/chmod on a host path
    out = images.docker(
        "run",
        "--rm",
        images.refs["helper"],
        "sh",
        "-c",
        "mkdir -m 0777 -p /v/pvc-1 && test -d /v/pvc-1 && rm -rf /v/pvc-1 && echo done",
    ).stdout
    assert out.strip() == "done"


def test_the_warm_rebuild_is_a_no_op_with_the_same_references(images):
    refs, seconds, result = run_build()
    assert refs == images.refs
    assert "up to date" in result.stderr and "building" not in result.stderr, result.stderr
    assert seconds < 30, f"warm rebuild took {seconds:.1f} s"


def test_images_import_into_a_containerd(images, tmp_path):
    """--import-to loads every image into a containerd's k8s.io namespace (what the real node runs)."""
    run_dir = Path("/run") / f"lsml-test-containerd-{uuid.uuid4().hex[:8]}"  # socket paths: short, not in /tmp
    sock = run_dir / "containerd.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{tmp_path}/root"\nstate = "{run_dir}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
        f'[ttrpc]\n  address = "{sock}.ttrpc"\n'
    )
    log = open(tmp_path / "containerd.log", "wb")
    containerd = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:

        def version() -> subprocess.CompletedProcess:
            if containerd.poll() is not None:
                pytest.fail(f"containerd exited: {(tmp_path / 'containerd.log').read_text()}")
            return subprocess.run(["ctr", "-a", str(sock), "version"], capture_output=True, text=True)

        wait_for(version, 30, 0.2, what=f"containerd to answer on {sock}", until=lambda done: done.returncode == 0)
        refs, _, _ = run_build("--import-to", str(sock))
        assert refs == images.refs
        listed = subprocess.run(
            ["ctr", "-a", str(sock), "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True, check=True
        ).stdout.split()
        version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
        for ref in (
            "docker.io/lsml/runtime:latest",
            "docker.io/lsml/operator:latest",
            f"docker.io/lsml/operator:{version}",
            "lsml.local/pause:3.10",
            "docker.io/" + images.refs["text_classifier"],
            images.refs["redis"],
            images.refs["helper"],
        ):
            assert ref in listed, f"{ref} not imported: {listed}"
    finally:
        containerd.terminate()
        containerd.wait(timeout=30)
        shutil.rmtree(tmp_path / "root", ignore_errors=True)  # the unpacked layers: about 2 GB
        shutil.rmtree(run_dir, ignore_errors=True)


def test_final_images_carry_no_wheelhouse_pip_settings_or_host_ca(images):
    """The wheelhouse and its pip settings live only in the build images; the host's CA bundle, mounted
    for pip while the wheelhouse is made, is in no image at all."""
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    for name in ("runtime", "operator", "text_classifier", "redis", "base", "runtime_build"):
        env = images.docker(
            "image", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", images.refs[name]
        ).stdout
        listing = images.docker(
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            images.refs[name],
            "-c",
            "ls -d /wheels /host-ca.crt 2>/dev/null; cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null | sha256sum",
        ).stdout
        if name == "runtime_build":  # the build image: the one that must have them (a check that bites)
            assert "/wheels" in listing and "PIP_NO_INDEX=1" in env
            continue
        assert "/wheels" not in listing and "/host-ca.crt" not in listing, f"{name}: {listing}"
        assert "PIP_NO_INDEX" not in env and "PIP_FIND_LINKS" not in env, f"{name}: {env}"
        if host_ca.is_file():
            assert hashlib.sha256(host_ca.read_bytes()).hexdigest() not in listing, f"{name} has the host's CA bundle"
