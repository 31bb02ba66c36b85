"""The operator end to end: real control plane (kwok nodes), the chart's RBAC, a real Label Studio,
a real lsml runtime for Label Studio to validate, and ``lsml-operator`` as a process.

The tests share one MLBackend (``e2e``) to keep the module fast, but none depends on another having
run: the ``e2e`` fixture brings it to its baseline before each test (created if a test deleted it, the
spec patched back to the manifest's, Ready at that generation with one Label Studio registration), so
any order works (checked by running each test alone and the module in reverse order).
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import signal
import time
from typing import Any

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import (
    WATCHED,
    apply_yaml,
    condition,
    get_mlb,
    kubectl_json,
    patch_mlb,
)

pytestmark = [pytest.mark.kubernetes, pytest.mark.labelstudio]

NS = WATCHED[0]
NAME = "e2e"
BASIC_PASSWORD = "pw-" + secrets.token_hex(12)


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _get(cluster, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _ready(cluster, name: str = NAME, generation: int | None = None) -> dict[str, Any] | None:
    mlb = get_mlb(cluster, NS, name)
    c = condition(mlb, "Ready")
    if not (c and c["status"] == "True"):
        return None
    if generation is not None and mlb["status"].get("observedGeneration") != generation:
        return None
    return mlb


def _ls_backends(label_studio, project: int) -> list[dict[str, Any]]:
    with label_studio.client() as c:
        return c.ml_backends(project)


def _merge_patch(current: Any, desired: Any) -> Any:
    """The JSON merge patch turning ``current`` into ``desired`` (keys only in ``current`` become null)."""
    if not (isinstance(current, dict) and isinstance(desired, dict)):
        return desired
    patch = {k: None for k in current if k not in desired}
    for k, v in desired.items():
        if k not in current or current[k] != v:
            patch[k] = _merge_patch(current.get(k), v)
    return patch


@pytest.fixture(scope="module")
def e2e_setup(k8s_cluster, operator, label_studio, lsml_runtime, operator_release):
    """examples/mlbackend.yaml (server + worker + managed Redis + storage), pointed at the session's
    Label Studio and, through labelStudio.backendURL, at a real lsml runtime on 127.0.0.1: the project,
    the Secrets and the manifest (applied by ``e2e``)."""
    with label_studio.client() as c:
        project = c.create_project(
            f"op-e2e-{secrets.token_hex(3)}",
            "<View><Text name='text' value='$text'/>"
            "<Choices name='label' toName='text'><Choice value='a'/><Choice value='b'/></Choices></View>",
        )
    apply_yaml(
        k8s_cluster,
        [
            _secret("ls-token", {"token": label_studio.legacy_token}),
            _secret("e2e-basic", {"user": "labelstudio", "password": BASIC_PASSWORD}),
        ],
        NS,
    )
    mlb = copy.deepcopy(example("mlbackend.yaml"))
    mlb["metadata"] = {"name": NAME, "namespace": NS}
    mlb["spec"]["labelStudio"].update(
        {
            "url": label_studio.url,
            "apiTokenSecretRef": {"name": "ls-token"},
            "projects": [project["id"]],
            "backendURL": lsml_runtime.url,
            "title": "e2e backend",
        }
    )
    mlb["spec"]["basicAuth"] = {"secretName": "e2e-basic", "usernameKey": "user", "passwordKey": "password"}
    state: dict[str, Any] = {"project": project["id"], "mlb": mlb}
    yield state
    # while the operator still runs (it holds the finalizer), so nothing is left for the next module
    k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--ignore-not-found", "--timeout=90s", check=False)
    try:
        with label_studio.client() as c:
            for pid in [project["id"], *state.get("extra_projects", [])]:
                c.delete_project(pid)
    except Exception:  # noqa: BLE001 - Label Studio may be down if a test failed mid-outage
        pass


@pytest.fixture
def e2e(k8s_cluster, e2e_setup, running_operator, label_studio):
    """The shared MLBackend at its baseline: the manifest's spec, Ready at that generation, registered in
    its one project. Whatever the previous test did (scaled, patched, deleted it, stopped Label Studio)."""
    label_studio.start()  # no-op while it runs (a test that stopped it restarts it, but may have failed first)
    live = get_mlb(k8s_cluster, NS, NAME)
    if live is None or live["metadata"].get("deletionTimestamp"):
        wait_for(lambda: get_mlb(k8s_cluster, NS, NAME) is None, timeout=90, message="previous e2e gone")
        apply_yaml(k8s_cluster, e2e_setup["mlb"], NS)
    else:
        patch = _merge_patch(live["spec"], e2e_setup["mlb"]["spec"])
        if patch:
            k8s_cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": patch}))
    gen = wait_for(lambda: get_mlb(k8s_cluster, NS, NAME), timeout=30, message="MLBackend e2e")["metadata"][
        "generation"
    ]
    wait_for(
        lambda: (
            (m := _ready(k8s_cluster, generation=gen))
            and [b["project"] for b in m["status"]["labelStudio"]["backends"]] == [e2e_setup["project"]]
        ),
        timeout=180,
        interval=1,
        message="MLBackend e2e at its baseline: Ready, registered in its one project",
    )
    return e2e_setup


# What the operator creates for the e2e MLBackend and owns (controller reference)
OWNED_CHILDREN = [
    ("deployment", "e2e-server"),
    ("deployment", "e2e-worker"),
    ("statefulset", "e2e-redis"),
    ("service", "e2e"),
    ("service", "e2e-redis"),
    ("pvc", "e2e-models"),
    ("networkpolicy", "e2e-redis"),
    ("secret", "e2e-redis-auth"),
]


def test_create_builds_every_child_with_owner_and_spec(k8s_cluster, e2e):
    mlb = get_mlb(k8s_cluster, NS, NAME)
    uid = mlb["metadata"]["uid"]
    for kind, name in OWNED_CHILDREN:
        obj = wait_for(lambda: _get(k8s_cluster, kind, name), timeout=60, message=f"{kind} {name}")
        refs = obj["metadata"]["ownerReferences"]
        assert refs[0]["uid"] == uid and refs[0]["kind"] == "MLBackend" and refs[0]["controller"] is True
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lsml-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME
    server = _get(k8s_cluster, "deployment", "e2e-server")
    pod = server["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert c["image"] == "lsml/runtime:latest"
    assert env["REDIS_URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@e2e-redis.{NS}.svc:6379/0"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "e2e-redis-auth", "key": "password"}
    assert env["LSML_SCORE_STRATEGY"]["value"] == "least_confidence"
    assert env["BASIC_AUTH_PASS"]["valueFrom"]["secretKeyRef"] == {"name": "e2e-basic", "key": "password"}
    assert pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "e2e-models"}} in pod["volumes"]
    sts = _get(k8s_cluster, "statefulset", "e2e-redis")
    assert "--appendonly yes" in sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
    full = json.loads(
        k8s_cluster.kubectl("get", "deployment", "e2e-server", "-n", NS, "-o", "json", "--show-managed-fields").stdout
    )
    managers = {(m["manager"], m["operation"]) for m in full["metadata"]["managedFields"]}
    assert ("lsml-operator", "Apply") in managers, managers


def test_becomes_ready_registered_with_printer_columns(k8s_cluster, label_studio, lsml_runtime, e2e):
    mlb = wait_for(
        lambda: _ready(k8s_cluster),
        timeout=180,
        interval=1,
        message="MLBackend e2e Ready (kwok pods Ready, PVCs bound, registered in Label Studio)",
    )
    st = mlb["status"]
    for ctype in ("ServerAvailable", "WorkerAvailable", "RedisReady", "LabelStudioRegistered"):
        c = condition(mlb, ctype)
        assert c["status"] == "True", c
        assert set(c) >= {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert st["observedGeneration"] == mlb["metadata"]["generation"]
    assert st["url"] == lsml_runtime.url and st["replicas"] == 1
    assert (
        st["selector"]
        == f"app.kubernetes.io/name=lsml,app.kubernetes.io/instance={NAME},app.kubernetes.io/component=server"
    )
    records = st["labelStudio"]["backends"]
    assert [r["project"] for r in records] == [e2e["project"]]
    in_ls = _ls_backends(label_studio, e2e["project"])
    assert [b["id"] for b in in_ls] == [records[0]["id"]]
    assert in_ls[0]["url"].rstrip("/") == lsml_runtime.url and in_ls[0]["title"] == "e2e backend"
    assert in_ls[0]["auth_method"] == "BASIC_AUTH"
    row = k8s_cluster.kubectl("get", "mlb", NAME, "-n", NS, "--no-headers").stdout.split()
    assert row[0] == NAME and row[1] == "True" and row[2] == "Ready" and row[3] == "1" and row[4] == lsml_runtime.url
    assert row[5] == st["modelVersion"] and st["modelVersion"], "MODEL VERSION column comes from Label Studio"
    reasons = {
        e["reason"]
        for e in kubectl_json(
            k8s_cluster, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={NAME}"
        )["items"]
    }
    assert {"Registered", "Ready"} <= reasons, reasons


def test_spec_change_rolls_the_deployments(k8s_cluster, e2e):
    before = _get(k8s_cluster, "deployment", "e2e-server")
    old_hash = before["spec"]["template"]["metadata"]["annotations"]["lsml.dev/config-hash"]
    patch = {
        "spec": {
            "image": "lsml/runtime:v2",
            "server": {
                "replicas": 2,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "512Mi", "cpu": "2"},
                },
            },
        }
    }
    k8s_cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps(patch))
    gen = get_mlb(k8s_cluster, NS, NAME)["metadata"]["generation"]

    def rolled():
        d = _get(k8s_cluster, "deployment", "e2e-server")
        c = d["spec"]["template"]["spec"]["containers"][0]
        return d if c["image"] == "lsml/runtime:v2" and d["spec"]["replicas"] == 2 else None

    dep = wait_for(rolled, timeout=60, message="server Deployment updated")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {
        "cpu": "2",
        "memory": "512Mi",
    }  # (GPU limits: kwok nodes have none; see test_builders)
    assert dep["spec"]["template"]["metadata"]["annotations"]["lsml.dev/config-hash"] != old_hash
    worker = _get(k8s_cluster, "deployment", "e2e-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "lsml/runtime:v2"
    mlb = wait_for(
        lambda: _ready(k8s_cluster, generation=gen),
        timeout=120,
        interval=1,
        message="Ready again at the new generation (kwok rolled the pods)",
    )
    assert mlb["status"]["replicas"] == 2
    d = _get(k8s_cluster, "deployment", "e2e-server")
    assert d["status"]["updatedReplicas"] == 2


def test_child_deleted_or_edited_by_hand_is_restored(k8s_cluster, e2e):
    old_uid = _get(k8s_cluster, "deployment", "e2e-server")["metadata"]["uid"]
    k8s_cluster.kubectl("delete", "deployment", "e2e-server", "-n", NS, "--wait=false")
    wait_for(
        lambda: (d := _get(k8s_cluster, "deployment", "e2e-server")) and d["metadata"]["uid"] != old_uid,
        timeout=30,
        message="server Deployment recreated",
    )
    k8s_cluster.kubectl(
        "patch",
        "service",
        "e2e",
        "-n",
        NS,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/ports/0/port", "value": 1234}]),
    )
    wait_for(
        lambda: _get(k8s_cluster, "service", "e2e")["spec"]["ports"][0]["port"] == 9090,
        timeout=30,
        message="Service port restored to 9090",
    )
    k8s_cluster.kubectl("delete", "statefulset", "e2e-redis", "-n", NS, "--wait=false")
    wait_for(
        lambda: (s := _get(k8s_cluster, "statefulset", "e2e-redis")) and not s["metadata"].get("deletionTimestamp"),
        timeout=30,
        message="Redis StatefulSet recreated",
    )
    wait_for(lambda: _ready(k8s_cluster), timeout=120, interval=1, message="Ready after restore")


def test_scale_subresource_drives_server_replicas(k8s_cluster, e2e):
    k8s_cluster.kubectl("scale", "mlb", NAME, "-n", NS, "--replicas=3")
    wait_for(
        lambda: _get(k8s_cluster, "deployment", "e2e-server")["spec"]["replicas"] == 3,
        timeout=30,
        message="Deployment scaled to 3",
    )
    mlb = wait_for(
        lambda: (m := _ready(k8s_cluster)) and m["status"]["replicas"] == 3 and m,
        timeout=90,
        message="status.replicas 3",
    )
    pods = kubectl_json(k8s_cluster, "get", "pods", "-n", NS, "-l", mlb["status"]["selector"])["items"]
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 3
    scale = json.loads(
        k8s_cluster.kubectl("get", "--raw", f"/apis/lsml.dev/v1alpha1/namespaces/{NS}/mlbackends/{NAME}/scale").stdout
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3


def test_label_studio_outage_sets_condition_false_then_recovers(k8s_cluster, label_studio, e2e):
    registered = condition(get_mlb(k8s_cluster, NS, NAME), "LabelStudioRegistered")
    assert registered["status"] == "True"
    label_studio.stop()
    try:
        patch_mlb(k8s_cluster, NS, NAME, {"labelStudio": {"title": "e2e backend v2"}})
        c = wait_for(
            lambda: (
                (c := condition(get_mlb(k8s_cluster, NS, NAME), "LabelStudioRegistered"))
                and c["status"] == "False"
                and c
            ),
            timeout=60,
            message="LabelStudioRegistered False while Label Studio is down",
        )
        assert c["reason"] == "LabelStudioUnreachable", c
        assert condition(get_mlb(k8s_cluster, NS, NAME), "Ready")["status"] == "False"
    finally:
        label_studio.start()
    c = wait_for(
        lambda: (
            (c := condition(get_mlb(k8s_cluster, NS, NAME), "LabelStudioRegistered")) and c["status"] == "True" and c
        ),
        timeout=90,
        interval=1,
        message="LabelStudioRegistered True again",
    )
    assert c["lastTransitionTime"] >= registered["lastTransitionTime"]
    in_ls = _ls_backends(label_studio, e2e["project"])
    assert len(in_ls) == 1 and in_ls[0]["title"] == "e2e backend v2"
    wait_for(lambda: _ready(k8s_cluster), timeout=60, message="Ready after Label Studio came back")


def test_sigkill_mid_registration_converges_without_duplicates(k8s_cluster, label_studio, running_operator, e2e):
    """Kill the operator the moment Label Studio has the new backend (before status can record it);
    the restarted operator must adopt it by URL, not create a second one."""
    with label_studio.client() as c:
        extra = c.create_project(
            f"op-kill-{secrets.token_hex(3)}",
            "<View><Text name='t' value='$t'/><Choices name='l' toName='t'><Choice value='x'/></Choices></View>",
        )["id"]
    e2e.setdefault("extra_projects", []).append(extra)
    projects = [e2e["project"], extra]
    patch_mlb(k8s_cluster, NS, NAME, {"labelStudio": {"projects": projects}})
    wait_for(
        lambda: _ls_backends(label_studio, extra),
        timeout=60,
        interval=0.05,
        message="backend created in the new project",
    )
    running_operator.kill(signal.SIGKILL)
    time.sleep(1)
    running_operator.start()
    mlb = wait_for(
        lambda: (m := _ready(k8s_cluster)) and len(m["status"]["labelStudio"]["backends"]) == 2 and m,
        timeout=120,
        interval=1,
        message="Ready with both projects recorded after the restart",
    )
    for project in projects:
        assert len(_ls_backends(label_studio, project)) == 1, f"duplicate backend in project {project}"
    recorded = {r["project"]: r["id"] for r in mlb["status"]["labelStudio"]["backends"]}
    assert recorded[extra] == _ls_backends(label_studio, extra)[0]["id"]
    # dropping a project from the spec removes its registration
    patch_mlb(k8s_cluster, NS, NAME, {"labelStudio": {"projects": [e2e["project"]]}})
    # What the operator promises is a deregistration within a reconcile and a Label Studio call: one call may
    # take LSML_OPERATOR_LABEL_STUDIO_TIMEOUT (30 s) on a loaded machine before the retry (a 60 s wait ran out
    # once in a loaded CI run), so the wait covers two calls and the retry.
    wait_for(
        lambda: not _ls_backends(label_studio, extra),
        timeout=120,
        message="registration of the dropped project deleted",
    )
    wait_for(
        lambda: (m := get_mlb(k8s_cluster, NS, NAME)) and len(m["status"]["labelStudio"]["backends"]) == 1,
        timeout=30,
        message="status lists one project",
    )


def test_delete_removes_registrations_and_garbage_collects_children(k8s_cluster, label_studio, e2e):
    assert len(_ls_backends(label_studio, e2e["project"])) == 1
    k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--wait=false")
    wait_for(lambda: get_mlb(k8s_cluster, NS, NAME) is None, timeout=90, message="MLBackend gone (finalizer released)")
    assert _ls_backends(label_studio, e2e["project"]) == []
    # the Redis claim comes from the StatefulSet's volumeClaimTemplate: no owner reference, the operator deletes it
    for kind, name in [*OWNED_CHILDREN, ("pvc", "data-e2e-redis-0")]:
        wait_for(lambda: _get(k8s_cluster, kind, name) is None, timeout=90, message=f"{kind} {name} garbage-collected")


def test_tokens_and_passwords_never_in_logs_events_or_status(k8s_cluster, label_studio, running_operator, e2e):
    redis_password = base64.b64decode(_get(k8s_cluster, "secret", "e2e-redis-auth")["data"]["password"]).decode()
    log = running_operator.log()
    assert "e2e" in log and len(log) > 1000, "operator log is empty: nothing to check"
    events = k8s_cluster.kubectl("get", "events", "-n", NS, "-o", "json").stdout
    mlbs = k8s_cluster.kubectl("get", "mlb", "-n", NS, "-o", "json").stdout
    for secret in (label_studio.legacy_token, BASIC_PASSWORD, redis_password):
        assert secret not in log
        assert secret not in events
        assert secret not in mlbs
