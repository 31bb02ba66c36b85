"""The operator's cluster tests' shared pieces: the namespaces the chart watches, ``lsml-operator`` as a
process, the lsml runtime Label Studio validates, and reading MLBackends and their conditions.

conftest.py builds its fixtures from these; tests import them from here.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import stop_process

RELEASE = "lsml-operator"
SYSTEM_NS = "lsml-system"
WATCHED = ("lsml-op-a", "lsml-op-b")
UNWATCHED = "lsml-op-free"
SA = "lsml-operator"
VENV_BIN = Path(sys.executable).parent


# Each start outranks every process started before it: a SIGKILLed operator's peering record stays until it
# expires (kopf's 60 s), and kopf pauses an operator that sees a peer of higher or equal priority, so a restart
# with the default random priority paused for up to a minute half the time (a 60 s wait in a test ran out).
_PRIORITIES = itertools.count(1_000_000)


class OperatorProcess:
    """``lsml-operator`` as a subprocess; start/stop/kill, its log, its liveness endpoint."""

    def __init__(self, kubeconfig: Path, log_path: Path, namespaces: tuple[str, ...]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = namespaces
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self, extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> None:
        exe = VENV_BIN / "lsml-operator"
        if not exe.exists():
            pytest.fail(f"{exe} missing: install the project (hack/venv.sh) so the lsml-operator entry point exists")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "LSML_OPERATOR_TIMER_SECONDS": "2",
            "LSML_OPERATOR_RESYNC_SECONDS": "60",
            "LSML_OPERATOR_RETRY_BASE_SECONDS": "1",
            "LSML_OPERATOR_RETRY_MAX_SECONDS": "4",
            "LSML_OPERATOR_DELETE_RETRIES": "3",
            **(extra_env or {}),
        }
        argv = [
            str(exe),
            *[f"--namespace={n}" for n in self.namespaces],
            f"--liveness={self.liveness_url}",
            "--peering-name=lsml-operator",
            *(extra_args or []),
        ]
        if not any(a.startswith("--priority") for a in argv):
            argv.append(f"--priority={next(_PRIORITIES)}")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        wait_for_port(self.port, timeout=60)
        wait_for(self._healthy, timeout=60, message=f"operator liveness {self.liveness_url}; log:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            pytest.fail(f"lsml-operator exited ({self.proc and self.proc.returncode}); log:\n{self.log_tail()}")
        with urllib.request.urlopen(self.liveness_url, timeout=2) as r:
            return r.status == 200

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])


BACKEND_MODEL = textwrap.dedent('''
    """A tiny model for the operator tests: answers setup and predict, so Label Studio's validation passes."""
    from lsml import LabelStudioMLBase


    class EchoModel(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            return []
''')
BACKEND_WSGI = "from lsml.server import create_app\napp = create_app('echo_model:EchoModel')\n"


class RuntimeServer:
    """A real lsml runtime (gunicorn + lsml.server.create_app) on 127.0.0.1, what Label Studio registers."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.dir / "echo_model.py").write_text(BACKEND_MODEL)
        (self.dir / "lsml_wsgi.py").write_text(BACKEND_WSGI)
        env = {**os.environ, "MODEL_DIR": str(self.dir / "models"), "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        log = open(self.dir / "runtime.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(self.dir),
                "--workers",
                "1",
                "--threads",
                "4",
                "lsml_wsgi:app",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, timeout=60)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"lsml runtime exited; log:\n{(self.dir / 'runtime.log').read_text()[-3000:]}")
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200

        wait_for(healthy, timeout=60, message="lsml runtime /health")

    def stop(self) -> None:
        stop_process(self.proc, 20, group=True)


def custom_api(cluster: KubernetesCluster):
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api_client())


def get_mlb(cluster: KubernetesCluster, ns: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return custom_api(cluster).get_namespaced_custom_object("lsml.dev", "v1alpha1", ns, "mlbackends", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(mlb: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((mlb or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return None


def kubectl_json(cluster: KubernetesCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def apply_yaml(cluster: KubernetesCluster, docs: list[dict[str, Any]] | dict[str, Any], ns: str, check: bool = True):
    docs = docs if isinstance(docs, list) else [docs]
    return cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def patch_mlb(cluster: KubernetesCluster, ns: str, name: str, spec: dict[str, Any]) -> None:
    """Merge-patch an MLBackend's spec as a user would (`kubectl patch mlb --type=merge`); None deletes a field."""
    cluster.kubectl("patch", "mlb", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}))
