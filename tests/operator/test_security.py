"""Security of what the operator builds, on the real control plane with the operator running under the
chart's RBAC (issue 10, items 1 and 8):

- the managed Redis gets a generated password Secret, created once and kept across reconciles and
  operator restarts, owned by the MLBackend, referenced (never copied) by Redis and the runtime pods;
- a NetworkPolicy admits only the backend's server and worker to Redis, and goes with the opt-out;
- an MLBackend named like an existing Service/Deployment does not take them over: they stay untouched
  and the ChildrenOwned condition names them.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import signal
from typing import Any

import pytest

from lsml_operator.kube import Kube
from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import UNWATCHED, WATCHED, apply_yaml, condition, get_mlb, kubectl_json

pytestmark = pytest.mark.kubernetes
NS = WATCHED[1]


def _get(cluster, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _password(secret: dict[str, Any]) -> str:
    return base64.b64decode(secret["data"]["password"]).decode()


def _env(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}


def _scale(cluster, name: str, replicas: int) -> None:
    """A spec change: the update handler runs a full reconcile (what would regenerate a careless Secret)."""
    cluster.kubectl(
        "patch", "mlb", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"server": {"replicas": replicas}}})
    )
    wait_for(
        lambda: (d := _get(cluster, "deployment", f"{name}-server")) and d["spec"]["replicas"] == replicas,
        timeout=60,
        message=f"{name}-server scaled to {replicas} (a reconcile ran)",
    )


@pytest.fixture
def redis_backend(k8s_cluster, running_operator):
    # a fresh name per test: the previous test's children may still await the garbage collector
    name = f"sec-redis-{secrets.token_hex(3)}"
    mlb = copy.deepcopy(example("mlbackend.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    mlb["spec"].pop("labelStudio")
    mlb["spec"].pop("basicAuth", None)
    apply_yaml(k8s_cluster, mlb, NS)
    yield name
    k8s_cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)


def test_redis_password_secret_is_generated_once_owned_and_only_referenced(
    k8s_cluster, running_operator, redis_backend
):
    name = redis_backend
    secret_name = f"{name}-redis-auth"
    secret = wait_for(lambda: _get(k8s_cluster, "secret", secret_name), timeout=60, message="Redis password Secret")
    uid = get_mlb(k8s_cluster, NS, name)["metadata"]["uid"]
    ref = secret["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("MLBackend", uid, True)  # garbage-collected with it
    assert secret["type"] == "Opaque"
    password = _password(secret)
    assert len(password) == 64 and int(password, 16) >= 0

    sts = wait_for(lambda: _get(k8s_cluster, "statefulset", f"{name}-redis"), timeout=60, message="Redis StatefulSet")
    redis_env = _env(sts)
    key_ref = {"name": secret_name, "key": "password"}
    assert redis_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == key_ref
    assert redis_env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == key_ref  # the readiness probe's redis-cli
    assert "--protected-mode" not in json.dumps(sts)
    for dep in ("server", "worker"):
        d = wait_for(lambda: _get(k8s_cluster, "deployment", f"{name}-{dep}"), timeout=60, message=f"{dep} Deployment")
        env = _env(d)
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == key_ref
        assert env["REDIS_URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@{name}-redis.{NS}.svc:6379/0"
    for kind, obj in [
        ("statefulset", f"{name}-redis"),
        ("deployment", f"{name}-server"),
        ("deployment", f"{name}-worker"),
    ]:
        assert password not in k8s_cluster.kubectl("get", kind, obj, "-n", NS, "-o", "json").stdout

    # kept across reconciles (spec updates) and an operator restart (resume: full reconcile)
    version = secret["metadata"]["resourceVersion"]
    _scale(k8s_cluster, name, 2)
    running_operator.kill(signal.SIGKILL)
    running_operator.start()
    _scale(k8s_cluster, name, 3)
    again = _get(k8s_cluster, "secret", secret_name)
    assert _password(again) == password and again["metadata"]["resourceVersion"] == version

    # never in status, events or the operator's log
    assert password not in k8s_cluster.kubectl("get", "mlb", name, "-n", NS, "-o", "json").stdout
    assert password not in k8s_cluster.kubectl("get", "events", "-n", NS, "-o", "json").stdout
    assert password not in running_operator.log()

    # a Secret deleted by hand: a new password, and Redis and the pods roll to it (new version annotation)
    old_hash = _get(k8s_cluster, "deployment", f"{name}-server")["spec"]["template"]["metadata"]["annotations"][
        "lsml.dev/config-hash"
    ]
    k8s_cluster.kubectl("delete", "secret", secret_name, "-n", NS)
    _scale(k8s_cluster, name, 1)
    fresh = wait_for(lambda: _get(k8s_cluster, "secret", secret_name), timeout=60, message="Secret recreated")
    assert _password(fresh) != password
    wait_for(
        lambda: (
            _get(k8s_cluster, "statefulset", f"{name}-redis")["spec"]["template"]["metadata"]["annotations"][
                "lsml.dev/redis-auth-version"
            ]
            == fresh["metadata"]["resourceVersion"]
        ),
        timeout=60,
        message="Redis StatefulSet rolled to the new password",
    )
    new_hash = _get(k8s_cluster, "deployment", f"{name}-server")["spec"]["template"]["metadata"]["annotations"][
        "lsml.dev/config-hash"
    ]
    assert new_hash != old_hash


def test_network_policy_admits_only_server_and_worker_and_follows_the_opt_out(
    k8s_cluster, running_operator, redis_backend
):
    name = redis_backend
    pol = wait_for(lambda: _get(k8s_cluster, "networkpolicy", f"{name}-redis"), timeout=60, message="NetworkPolicy")
    uid = get_mlb(k8s_cluster, NS, name)["metadata"]["uid"]
    assert pol["metadata"]["ownerReferences"][0]["uid"] == uid
    spec = pol["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    sts = wait_for(lambda: _get(k8s_cluster, "statefulset", f"{name}-redis"), timeout=60, message="Redis StatefulSet")
    assert spec["podSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "lsml", "app.kubernetes.io/instance": name}
    assert peer["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["server", "worker"]}
    ]
    # the API server's own label-selector evaluation: exactly the server and worker pods of this backend
    selector = (
        f"app.kubernetes.io/name=lsml,app.kubernetes.io/instance={name},app.kubernetes.io/component in (server,worker)"
    )
    pods = wait_for(
        lambda: (
            (p := kubectl_json(k8s_cluster, "get", "pods", "-n", NS, "-l", selector)["items"])
            and len({x["metadata"]["labels"]["app.kubernetes.io/component"] for x in p}) == 2
            and p
        ),
        timeout=90,
        message="server and worker pods (kwok)",
    )
    assert {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in pods} == {name}

    k8s_cluster.kubectl(
        "patch", "mlb", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"redis": {"networkPolicy": False}}})
    )
    wait_for(
        lambda: _get(k8s_cluster, "networkpolicy", f"{name}-redis") is None,
        timeout=60,
        message="NetworkPolicy removed (opt-out)",
    )
    assert _get(k8s_cluster, "secret", f"{name}-redis-auth") is not None  # the password stays


def test_foreign_service_and_deployment_are_not_adopted(k8s_cluster, running_operator):
    name = "sec-taken"
    foreign_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"owner": "someone-else"}},
        "spec": {"selector": {"app": "foreign"}, "ports": [{"name": "web", "port": 80, "targetPort": 8080}]},
    }
    foreign_dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-server", "namespace": NS, "labels": {"owner": "someone-else"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "foreign"}},
            "template": {
                "metadata": {"labels": {"app": "foreign"}},
                "spec": {"containers": [{"name": "web", "image": "foreign/web:1"}]},
            },
        },
    }
    apply_yaml(k8s_cluster, [foreign_svc, foreign_dep], NS)
    before = {kind: _get(k8s_cluster, kind, n) for kind, n in [("service", name), ("deployment", f"{name}-server")]}
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    apply_yaml(k8s_cluster, mlb, NS)

    def untouched() -> None:
        for kind, old in before.items():
            now = _get(k8s_cluster, kind, old["metadata"]["name"])
            assert not now["metadata"].get("ownerReferences"), f"{kind} was taken over"
            assert now["spec"]["selector"] == old["spec"]["selector"], f"{kind} was taken over"
            # (not resourceVersion: the Deployment controller keeps writing the foreign Deployment's status)
            assert now["spec"] == old["spec"] and now["metadata"].get("generation") == old["metadata"].get(
                "generation"
            ), f"{kind} spec was modified"
            assert now["metadata"].get("labels") == old["metadata"].get("labels"), f"{kind} labels were modified"
            full = json.loads(
                k8s_cluster.kubectl(
                    "get", kind, old["metadata"]["name"], "-n", NS, "-o", "json", "--show-managed-fields"
                ).stdout
            )
            assert "lsml-operator" not in {m["manager"] for m in full["metadata"]["managedFields"]}

    try:
        # the first reconcile wrote status, or (the hole) took the Service over
        wait_for(
            lambda: (
                (get_mlb(k8s_cluster, NS, name).get("status") or {}).get("observedGeneration") == 1
                or _get(k8s_cluster, "service", name)["metadata"].get("ownerReferences")
            ),
            timeout=60,
            message="first reconcile done (status written)",
        )
        untouched()
        c = condition(get_mlb(k8s_cluster, NS, name), "ChildrenOwned")
        assert c and c["status"] == "False" and c["reason"] == "ForeignObject", c
        assert f"Service {NS}/{name}" in c["message"] and f"Deployment {NS}/{name}-server" in c["message"], c
        assert condition(get_mlb(k8s_cluster, NS, name), "Ready")["status"] == "False"
        _scale_via_patch = {"spec": {"server": {"replicas": 2}}}  # another full reconcile must not touch them either
        k8s_cluster.kubectl("patch", "mlb", name, "-n", NS, "--type=merge", "-p", json.dumps(_scale_via_patch))
        wait_for(
            lambda: get_mlb(k8s_cluster, NS, name)["status"].get("observedGeneration") == 2,
            timeout=60,
            message="generation 2 reconciled",
        )
        untouched()
        reasons = {
            e["reason"]
            for e in kubectl_json(
                k8s_cluster, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}"
            )["items"]
        }
        assert "AdoptionRefused" in reasons, reasons

        # the owner removes them: the operator creates its own, and the condition goes away
        k8s_cluster.kubectl("delete", "service", name, "-n", NS)
        k8s_cluster.kubectl("delete", "deployment", f"{name}-server", "-n", NS)
        k8s_cluster.kubectl(
            "patch", "mlb", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"server": {"replicas": 1}}})
        )
        wait_for(
            lambda: condition(get_mlb(k8s_cluster, NS, name), "ChildrenOwned") is None,
            timeout=60,
            message="ChildrenOwned removed once the names are free",
        )
        svc = _get(k8s_cluster, "service", name)
        assert svc["metadata"]["ownerReferences"][0]["uid"] == get_mlb(k8s_cluster, NS, name)["metadata"]["uid"]
    finally:
        k8s_cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
        for kind, n in [("service", name), ("deployment", f"{name}-server")]:
            k8s_cluster.kubectl("delete", kind, n, "-n", NS, "--ignore-not-found", check=False)


def test_a_secret_name_with_dot_segments_reads_nothing_of_another_namespace(k8s_cluster):
    """The operator reads the Secrets an MLBackend names in its own namespace. Before the fix a name such as
    `../../<other namespace>/secrets/<name>` was joined into the API path and urllib3 resolved the dot segments:
    the operator read (and would send to the spec's Label Studio URL) a Secret of another namespace."""
    victim = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "victim-token", "namespace": UNWATCHED},
        "stringData": {"token": "victims-secret-token"},
    }
    for namespace in (NS, UNWATCHED):  # this test alone needs no operator release, which would create them
        k8s_cluster.kubectl("create", "namespace", namespace, check=False)
    apply_yaml(k8s_cluster, victim, UNWATCHED)
    kube = Kube(k8s_cluster.api_client())
    assert kube.secret_value(UNWATCHED, "victim-token", "token")[0] == "victims-secret-token"  # it is there
    for name in (f"../../{UNWATCHED}/secrets/victim-token", f"..%2F..%2F{UNWATCHED}%2Fsecrets%2Fvictim-token"):
        with pytest.raises(KeyError, match="not a Kubernetes object name"):
            kube.secret_value(NS, name, "token")
