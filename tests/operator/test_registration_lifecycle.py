"""Label Studio registration beyond the happy path of test_operator: a personal access token,
removing ``spec.labelStudio``, and deleting the resource while Label Studio is down.

One server-only MLBackend (``pat``) in the second watched namespace, tests in file order:
register with a PAT -> spec.labelStudio removed (deregistered) -> put back (registered again)
-> deleted while Label Studio is stopped (finalizer retries, then lets go with a Warning event)
-> the PAT appears nowhere the operator writes.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest

from tests.fixtures.kubernetes import wait_for

from .cluster import WATCHED, apply_yaml, condition, get_mlb, kubectl_json

pytestmark = [pytest.mark.kubernetes, pytest.mark.labelstudio]

NS = WATCHED[1]
NAME = "pat"
CONFIG = (
    "<View><Text name='text' value='$text'/>"
    "<Choices name='label' toName='text'><Choice value='a'/><Choice value='b'/></Choices></View>"
)


def _ls_backends(label_studio, project: int) -> list[dict[str, Any]]:
    with label_studio.client() as c:
        return c.ml_backends(project)


def _events(cluster) -> list[dict[str, Any]]:
    return kubectl_json(cluster, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={NAME}")["items"]


def _registered(cluster) -> dict[str, Any] | None:
    mlb = get_mlb(cluster, NS, NAME)
    c = condition(mlb, "LabelStudioRegistered")
    return mlb if c and c["status"] == "True" and condition(mlb, "Ready")["status"] == "True" else None


@pytest.fixture(scope="module")
def pat(k8s_cluster, operator, label_studio, lsml_runtime, operator_release):
    if not operator.running:  # an earlier module may have stopped it
        operator.start()
    token = label_studio.personal_access_token()
    assert token.count(".") == 2 and token != label_studio.legacy_token, "a PAT is a JWT, not the legacy token"
    with label_studio.client() as c:
        project = c.create_project(f"op-pat-{secrets.token_hex(3)}", CONFIG)["id"]
    apply_yaml(
        k8s_cluster,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ls-pat", "namespace": NS},
            "type": "Opaque",
            "data": {"pat": base64.b64encode(token.encode()).decode()},
        },
        NS,
    )
    ls_spec = {
        "url": label_studio.url,
        "apiTokenSecretRef": {"name": "ls-pat", "key": "pat"},
        "projects": [project],
        "backendURL": lsml_runtime.url,
        "title": "pat backend",
    }
    mlb = {
        "apiVersion": "lsml.dev/v1alpha1",
        "kind": "MLBackend",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"image": "lsml/runtime:latest", "labelStudio": ls_spec},
    }
    state = {"project": project, "token": token, "mlb": mlb, "ls_spec": ls_spec}
    yield state
    if not label_studio.running:
        label_studio.start()
    k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
    try:
        with label_studio.client() as c:
            c.delete_project(project)
    except Exception:  # noqa: BLE001 - best-effort cleanup; a failing test already reported why
        pass


def test_registers_with_a_personal_access_token(k8s_cluster, label_studio, lsml_runtime, pat):
    apply_yaml(k8s_cluster, pat["mlb"], NS)
    mlb = wait_for(
        lambda: _registered(k8s_cluster),
        timeout=120,
        interval=1,
        message="MLBackend pat Ready and registered with the PAT",
    )
    ls = mlb["status"]["labelStudio"]
    in_ls = _ls_backends(label_studio, pat["project"])
    assert [b["id"] for b in in_ls] == [r["id"] for r in ls["backends"]]
    assert in_ls[0]["url"].rstrip("/") == lsml_runtime.url and in_ls[0]["title"] == "pat backend"
    # status records where and with which Secret (by name) to deregister, never the token
    assert ls["url"] == label_studio.url.rstrip("/") and ls["apiTokenSecretRef"] == {"name": "ls-pat", "key": "pat"}
    assert pat["token"] not in json.dumps(mlb)
    assert "Registered" in {e["reason"] for e in _events(k8s_cluster)}


def test_removing_spec_label_studio_deregisters(k8s_cluster, label_studio, pat):
    backend_id = get_mlb(k8s_cluster, NS, NAME)["status"]["labelStudio"]["backends"][0]["id"]
    k8s_cluster.kubectl(
        "patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"labelStudio": None}})
    )
    wait_for(
        lambda: not _ls_backends(label_studio, pat["project"]),
        timeout=60,
        interval=0.5,
        message="registration deleted after spec.labelStudio was removed",
    )
    mlb = wait_for(
        lambda: (m := get_mlb(k8s_cluster, NS, NAME)) and "labelStudio" not in m["status"] and m,
        timeout=30,
        message="status.labelStudio cleared",
    )
    assert condition(mlb, "LabelStudioRegistered") is None
    assert condition(mlb, "Ready")["status"] == "True", "no Label Studio wiring is a valid, Ready spec"
    msgs = [e["message"] for e in _events(k8s_cluster) if e["reason"] == "Deregistered"]
    assert any(str(backend_id) in m and "spec.labelStudio was removed" in m for m in msgs), msgs
    # wiring it back registers again
    k8s_cluster.kubectl(
        "patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"labelStudio": pat["ls_spec"]}})
    )
    wait_for(lambda: _registered(k8s_cluster), timeout=60, interval=1, message="registered again")
    assert len(_ls_backends(label_studio, pat["project"])) == 1


def test_delete_while_label_studio_is_down_retries_then_lets_go(k8s_cluster, label_studio, pat):
    """The operator fixture runs with LSML_OPERATOR_DELETE_RETRIES=3 and 1-4 s backoff (the defaults are
    10 and 5-300 s): the finalizer retries, then releases the resource with a Warning event.

    Within the same outage (one Label Studio restart, ~20 s, for both): spec.labelStudio removed while
    Label Studio is down keeps the records in status (a Warning, retried), and the finalizer then
    deregisters with what the operator recorded (URL + token Secret, annotation lsml.dev/label-studio)."""
    assert len(_ls_backends(label_studio, pat["project"])) == 1
    label_studio.stop()
    try:
        k8s_cluster.kubectl(
            "patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"labelStudio": None}})
        )
        wait_for(
            lambda: any(
                e["reason"] == "DeregistrationFailed" and "spec.labelStudio was removed" in e["message"]
                for e in _events(k8s_cluster)
            ),
            timeout=30,
            message="DeregistrationFailed event (unwiring)",
        )
        mlb = get_mlb(k8s_cluster, NS, NAME)
        assert len(mlb["status"]["labelStudio"]["backends"]) == 1, "records kept while they cannot be deleted"
        k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--wait=false")
        began = time.monotonic()
        held = get_mlb(k8s_cluster, NS, NAME)
        assert held and held["metadata"].get("deletionTimestamp"), "the finalizer holds the resource"
        wait_for(
            lambda: get_mlb(k8s_cluster, NS, NAME) is None,
            timeout=60,
            interval=0.5,
            message="MLBackend released after the delete retries",
        )
        assert time.monotonic() - began >= 5, "released before retrying with backoff (1+2+4 s)"
        failed = [
            e for e in _events(k8s_cluster) if e["reason"] == "DeregistrationFailed" and "gave up" in e["message"]
        ]
        assert failed and failed[0]["type"] == "Warning", [(e["reason"], e["message"]) for e in _events(k8s_cluster)]
        assert "gave up after 3 attempts" in failed[0]["message"] and "may remain" in failed[0]["message"]
    finally:
        label_studio.start()
    # what the event says: the registration was left in Label Studio (cleaned up here)
    left = _ls_backends(label_studio, pat["project"])
    assert len(left) == 1
    with label_studio.client() as c:
        c.delete_ml_backend(left[0]["id"])


def test_personal_access_token_never_in_logs_events_or_status(k8s_cluster, running_operator, pat):
    log = running_operator.log()
    assert NAME in log and "DeregistrationFailed" in log, "operator log lacks this module's work: nothing to check"
    events = k8s_cluster.kubectl("get", "events", "-n", NS, "-o", "json").stdout
    mlbs = k8s_cluster.kubectl("get", "mlb", "-n", NS, "-o", "json").stdout
    for where, text in (("log", log), ("events", events), ("MLBackends", mlbs)):
        assert pat["token"] not in text, f"PAT in operator {where}"
        # nor its signature part alone (a truncated token in a message)
        assert pat["token"].rsplit(".", 1)[1] not in text, f"PAT signature in operator {where}"


def test_a_status_patch_cannot_send_a_token_elsewhere_on_deregistration(
    k8s_cluster, operator, label_studio, pat, http_recorder
):
    """Issue 22 item 11: with spec.labelStudio gone, deregistration once took Label Studio's URL and the
    token Secret from status, which whoever may patch mlbackends/status writes. Here status names a
    recorder and another Secret while the operator is stopped; it restarts (no memory of its own) and
    deletes the resource: the recorder gets nothing, the real registration is deleted."""
    if not label_studio.running:
        label_studio.start()
    if not operator.running:
        operator.start()
    apply_yaml(k8s_cluster, pat["mlb"], NS)
    wait_for(lambda: _registered(k8s_cluster), timeout=120, interval=1, message="MLBackend pat registered again")
    assert len(_ls_backends(label_studio, pat["project"])) == 1
    other_token = f"other-{secrets.token_hex(16)}"
    apply_yaml(
        k8s_cluster,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ls-other", "namespace": NS},
            "type": "Opaque",
            "data": {"token": base64.b64encode(other_token.encode()).decode()},
        },
        NS,
    )
    recorder = http_recorder()
    operator.stop()
    try:
        k8s_cluster.kubectl(
            "patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"labelStudio": None}})
        )
        ls = get_mlb(k8s_cluster, NS, NAME)["status"]["labelStudio"]
        forged = {
            **ls,
            "url": recorder.url,
            "apiTokenSecretRef": {"name": "ls-other", "key": "token"},
            "backends": [{**b, "url": recorder.url + "/backend"} for b in ls["backends"]],
        }
        k8s_cluster.kubectl(
            "patch",
            "mlb",
            NAME,
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": {"labelStudio": forged}}),
        )
        assert get_mlb(k8s_cluster, NS, NAME)["status"]["labelStudio"]["url"] == recorder.url
        k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--wait=false")
    finally:
        operator.start()
    wait_for(lambda: get_mlb(k8s_cluster, NS, NAME) is None, timeout=60, interval=0.5, message="MLBackend deleted")
    assert recorder.requests == [], [(r.method, r.path, r.headers.get("authorization")) for r in recorder.requests]
    assert _ls_backends(label_studio, pat["project"]) == [], "the real registration was not deleted"
    assert other_token not in operator.log()
    k8s_cluster.kubectl("delete", "secret", "ls-other", "-n", NS, "--ignore-not-found")
