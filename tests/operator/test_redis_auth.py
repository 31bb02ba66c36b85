"""The managed Redis requires a password and only its own server and worker may reach it (issue 10, item 1).

Builder checks (pure), plus the containers' shell snippets run for real: kwok fakes pods, so the
start script, the readiness probe and the runtime's REDIS_URL (as the kubelet expands it) are
exercised here against a real redis-server with the same arguments (only ``--dir /data`` and the
port are swapped for a temp dir and a free port).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lsml_operator.builders import common as C
from lsml_operator.builders import desired_children, network_policy, redis, server_deployment, worker_deployment
from lsml_operator.builders import labels as L
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import stop_process

PASSWORD = "0f" * 32


def _mlb(name: str = "mlbackend.yaml") -> dict[str, Any]:
    return with_identity(example(name), namespace="team-a", uid="u-1")


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _kubelet_expand(value: str, env: dict[str, str]) -> str:
    """What the kubelet does with ``$(NAME)`` in an env value: substitute variables defined before it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + In expressions) evaluated as the API server does."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


# ---- builders -----------------------------------------------------------------------------------


def test_auth_secret_is_random_owned_and_opaque():
    a, b = redis.new_password(), redis.new_password()
    assert a != b and re.fullmatch(r"[0-9a-f]{64}", a)
    sec = redis.build_auth_secret(_mlb(), PASSWORD)
    assert sec["kind"] == "Secret" and sec["type"] == "Opaque"
    assert sec["metadata"]["name"] == "text-classifier-redis-auth" == L.redis_auth_secret_name("text-classifier")
    assert sec["metadata"]["ownerReferences"][0]["uid"] == "u-1"  # garbage-collected with the MLBackend
    assert base64.b64decode(sec["data"][C.REDIS_PASSWORD_KEY]).decode() == PASSWORD
    assert sec not in desired_children(_mlb())  # created once by the reconciler, never re-applied


def test_redis_reads_password_from_secret_never_from_the_pod_spec():
    sts = redis.build_statefulset(_mlb(), auth_version="42")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    ref = {"secretKeyRef": {"name": "text-classifier-redis-auth", "key": "password"}}
    assert _env(c)["REDIS_PASSWORD"]["valueFrom"] == ref
    assert _env(c)["REDISCLI_AUTH"]["valueFrom"] == ref
    assert all("value" not in e for e in c["env"])
    assert "--protected-mode" not in " ".join(c["command"])
    assert "requirepass $REDIS_PASSWORD" in c["command"][2]
    assert "REDISCLI_AUTH" not in json.dumps(c["readinessProbe"])  # the probe's redis-cli reads it from env
    assert sts["spec"]["template"]["metadata"]["annotations"][redis.AUTH_VERSION_ANNOTATION] == "42"


def test_server_and_worker_get_redis_url_through_the_secret():
    mlb = _mlb()
    for build in (server_deployment.build, worker_deployment.build):
        c = build(mlb, config_hash="h")["spec"]["template"]["spec"]["containers"][0]
        names = [e["name"] for e in c["env"]]
        # dependent expansion only sees variables defined earlier in the list
        assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
        env = _env(c)
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "text-classifier-redis-auth",
            "key": "password",
        }
        assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@text-classifier-redis.team-a.svc:6379/0"


def test_new_password_version_rolls_redis_and_the_pods():
    mlb = _mlb()
    a = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(mlb, redis_auth_version="1")}
    b = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(mlb, redis_auth_version="2")}
    for key in [
        ("Deployment", "text-classifier-server"),
        ("Deployment", "text-classifier-worker"),
        ("StatefulSet", "text-classifier-redis"),
    ]:
        assert (
            a[key]["spec"]["template"]["metadata"]["annotations"]
            != b[key]["spec"]["template"]["metadata"]["annotations"]
        ), key


def test_network_policy_admits_only_this_backends_server_and_worker():
    mlb = _mlb()
    pol = network_policy.build(mlb)
    assert pol["kind"] == "NetworkPolicy" and pol["metadata"]["name"] == "text-classifier-redis"
    assert pol["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    spec = pol["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    kids = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(mlb)}
    redis_pod = kids[("StatefulSet", "text-classifier-redis")]["spec"]["template"]["metadata"]["labels"]
    server_pod = kids[("Deployment", "text-classifier-server")]["spec"]["template"]["metadata"]["labels"]
    worker_pod = kids[("Deployment", "text-classifier-worker")]["spec"]["template"]["metadata"]["labels"]
    assert _selects(spec["podSelector"], redis_pod) and not _selects(spec["podSelector"], server_pod)
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}  # no namespaceSelector: this namespace only
    assert _selects(peer["podSelector"], server_pod) and _selects(peer["podSelector"], worker_pod)
    other_server = L.labels("other-backend", L.SERVER)
    assert not _selects(peer["podSelector"], other_server)
    assert not _selects(peer["podSelector"], {"app": "anything"})
    assert not _selects(peer["podSelector"], redis_pod)
    assert ("NetworkPolicy", "text-classifier-redis") in kids


def test_network_policy_opt_out_and_none_without_managed_redis():
    mlb = _mlb()
    mlb["spec"]["redis"]["networkPolicy"] = False
    assert network_policy.build(mlb) is None
    assert "NetworkPolicy" not in {c["kind"] for c in desired_children(mlb)}
    mlb["spec"]["redis"] = {"external": {"urlSecretRef": {"name": "r"}}}
    assert network_policy.build(mlb) is None
    assert network_policy.build(_mlb("mlbackend-minimal.yaml")) is None


# ---- the containers' snippets against a real redis-server ---------------------------------------


@pytest.fixture
def redis_binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        pytest.fail("redis-server/redis-cli not found: install Debian's redis-server (hack/test does)")
    return server, cli


def _start_script(port: int, data: Path) -> str:
    script = redis.START_SCRIPT.format(port=port)
    assert "--dir /data " in script
    return script.replace("--dir /data ", f"--dir {data} ")


def _probe(port: int, env: dict[str, str]) -> int:
    return subprocess.run(["sh", "-c", redis.READINESS_SCRIPT.format(port=port)], env=env, timeout=20).returncode


def test_start_script_probe_and_runtime_url_work_with_auth(tmp_path, redis_binaries):
    import os

    import redis as redis_py

    port = free_port()
    base_env = {"PATH": os.environ["PATH"]}
    proc = subprocess.Popen(
        ["sh", "-c", _start_script(port, tmp_path)],
        env={**base_env, "REDIS_PASSWORD": PASSWORD},
        stdout=open(tmp_path / "redis.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=20)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "redis-server" in cmdline and PASSWORD not in cmdline  # not visible to `ps` either
        with pytest.raises(redis_py.AuthenticationError):
            redis_py.Redis(port=port).ping()
        # readiness probe: passes with REDISCLI_AUTH (from the Secret), fails without
        assert _probe(port, {**base_env, "REDISCLI_AUTH": PASSWORD}) == 0
        assert _probe(port, base_env) != 0
        assert _probe(port, {**base_env, "REDISCLI_AUTH": "wrong"}) != 0
        # the runtime's REDIS_URL as the kubelet hands it over, parsed by redis-py (what lsml uses)
        c = server_deployment.build(_mlb(), config_hash="h")["spec"]["template"]["spec"]["containers"][0]
        url = _kubelet_expand(_env(c)["REDIS_URL"]["value"], {"REDIS_PASSWORD": PASSWORD})
        assert url == f"redis://:{PASSWORD}@text-classifier-redis.team-a.svc:6379/0"
        local = url.replace("text-classifier-redis.team-a.svc:6379", f"127.0.0.1:{port}")
        client = redis_py.Redis.from_url(local)
        assert client.ping() is True
        client.close()
    finally:
        stop_process(proc, 10)


def test_redis_refuses_to_start_without_a_password(tmp_path, redis_binaries):
    import os

    port = free_port()
    proc = subprocess.run(
        ["sh", "-c", _start_script(port, tmp_path)],
        env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": ""},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode != 0
    assert "requirepass" in proc.stdout + proc.stderr
