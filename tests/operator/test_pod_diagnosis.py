"""pod_diagnosis unit tests: the pod and claim objects a cluster returns -> the condition's reason and message.

The pod dicts carry the fields kubelet and the scheduler of Kubernetes 1.36 write (waiting reasons and
messages, lastState.terminated, the PodScheduled condition); the cluster tests in
test_pod_diagnosis_cluster.py show the same causes end to end.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lsml_operator.pod_diagnosis import (
    CLAIM_UNBOUND,
    CONTAINER_CONFIG,
    CRASH_LOOP,
    IMAGE_PULL_FAILED,
    MAX_MESSAGE,
    POD_FAILED,
    UNSCHEDULABLE,
    by_component,
    diagnose,
    explain,
    needs_claims,
    pod_cause,
)
from lsml_operator.status import Check, ready_check

pytestmark = pytest.mark.unit

IMAGE = "registry.invalid/lsml/runtime:nope"
SECRET_VALUE = "s3cr3t-" + "x" * 12


def _pod(
    name: str = "demo-server-7d9c-abcde",
    component: str = "server",
    *,
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    claim: str | None = None,
) -> dict[str, Any]:
    volumes = [{"name": "models", "persistentVolumeClaim": {"claimName": claim}}] if claim else []
    volumes.append({"name": "tmp", "emptyDir": {}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns1",
            "labels": {
                "app.kubernetes.io/name": "lsml",
                "app.kubernetes.io/instance": "demo",
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/managed-by": "lsml-operator",
            },
        },
        "spec": {
            "containers": [
                {"name": component, "image": IMAGE, "env": [{"name": "BASIC_AUTH_PASS", "value": SECRET_VALUE}]}
            ],
            "volumes": volumes,
        },
        "status": {"phase": phase, "conditions": conditions or [], "containerStatuses": containers or []},
    }


def _scheduled(status: str = "True", reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    c = {"type": "PodScheduled", "status": status, "lastProbeTime": None, "lastTransitionTime": "2026-11-30T10:00:00Z"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _waiting(
    reason: str, message: str, *, restarts: int = 0, last: dict[str, Any] | None = None, name: str = "server"
) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
        "lastState": {"terminated": last} if last else {},
    }


PULL_MESSAGE = (
    f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": failed to do '
    'request: Head "https://registry.invalid/v2/lsml/runtime/manifests/nope": dial tcp: lookup '
    "registry.invalid on 10.96.0.10:53: no such host"
)
UNBOUND = (
    "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/2 nodes are "
    "available: 2 Preemption is not helpful for scheduling."
)
NO_NODE = (
    "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are "
    "available: 2 Preemption is not helpful for scheduling."
)


def test_image_pull_errors_name_the_image_and_kubelets_message():
    for reason, message in [
        ("ErrImagePull", PULL_MESSAGE),
        ("ImagePullBackOff", f'Back-off pulling image "{IMAGE}": ErrImagePull: {PULL_MESSAGE}'),
        ("ErrImageNeverPull", f'Container image "{IMAGE}" is not present with pull policy of Never'),
    ]:
        pod = _pod(conditions=[_scheduled()], containers=[_waiting(reason, message)])
        cause = diagnose([pod])
        assert cause is not None and cause.reason == IMAGE_PULL_FAILED, reason
        assert cause.message.startswith(
            f"pod demo-server-7d9c-abcde: container server cannot pull image {IMAGE}: {reason}: "
        )
        assert len(cause.message) <= MAX_MESSAGE


def test_crash_loop_names_the_last_exit_reason_and_code_never_the_termination_message():
    last = {
        "exitCode": 137,
        "reason": "OOMKilled",
        "message": f"token={SECRET_VALUE}",
        "startedAt": "2026-11-30T10:00:01Z",
        "finishedAt": "2026-11-30T10:00:02Z",
        "containerID": "containerd://1",
    }
    pod = _pod(
        phase="Running",
        conditions=[_scheduled()],
        containers=[
            _waiting(
                "CrashLoopBackOff", "back-off 40s restarting failed container=server pod=demo", restarts=3, last=last
            )
        ],
    )
    cause = diagnose([pod])
    assert cause is not None and cause.reason == CRASH_LOOP
    assert (
        cause.message
        == "pod demo-server-7d9c-abcde: container server keeps crashing (3 restarts), last exit: OOMKilled (exit code 137)"
    )
    assert SECRET_VALUE not in cause.message


def test_a_restarted_container_that_is_not_ready_yet_stays_a_crash_loop():
    # between back-offs kubelet runs the container again: the reason must not flap back to a bare replica count
    running = {
        "name": "server",
        "image": IMAGE,
        "ready": False,
        "started": True,
        "restartCount": 2,
        "state": {"running": {"startedAt": "2026-11-30T10:01:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
    }
    cause = diagnose([_pod(phase="Running", conditions=[_scheduled()], containers=[running])])
    assert cause is not None and cause.reason == CRASH_LOOP and "last exit: Error (exit code 1)" in cause.message
    # a clean exit (code 0) followed by a running, not yet ready container is not a crash
    running["lastState"]["terminated"] = {"exitCode": 0, "reason": "Completed"}
    assert diagnose([_pod(phase="Running", conditions=[_scheduled()], containers=[running])]) is None


def test_unbound_claim_names_the_claim_and_its_storage_class():
    pod = _pod(conditions=[_scheduled("False", "Unschedulable", UNBOUND)], claim="demo-models")
    claim = {
        "metadata": {"name": "demo-models"},
        "spec": {"storageClassName": "does-not-exist"},
        "status": {"phase": "Pending"},
    }
    assert needs_claims([pod])
    cause = diagnose([pod], {"demo-models": claim})
    assert cause is not None and cause.reason == CLAIM_UNBOUND
    assert cause.message == (
        "pod demo-server-7d9c-abcde waits for storage: PersistentVolumeClaim demo-models is Pending "
        '(storageClassName "does-not-exist")'
    )
    # a claim we do not know (the user's own): the scheduler's words, still the claim reason
    other = diagnose([pod], {})
    assert (
        other is not None
        and other.reason == CLAIM_UNBOUND
        and "unbound immediate PersistentVolumeClaims" in other.message
    )


def test_unschedulable_pod_carries_the_schedulers_message():
    pod = _pod(conditions=[_scheduled("False", "Unschedulable", NO_NODE)])
    assert not needs_claims([pod])
    cause = diagnose([pod])
    assert cause is not None and cause.reason == UNSCHEDULABLE
    assert cause.message.startswith(
        "pod demo-server-7d9c-abcde cannot be scheduled: 0/2 nodes are available: 2 node(s) didn't match"
    )


def test_missing_secret_key_is_a_config_error_naming_the_secret_not_its_value():
    pod = _pod(
        conditions=[_scheduled()],
        containers=[_waiting("CreateContainerConfigError", "couldn't find key password in Secret ns1/demo-auth")],
    )
    cause = diagnose([pod])
    assert cause is not None and cause.reason == CONTAINER_CONFIG and "Secret ns1/demo-auth" in cause.message


def test_evicted_pod_is_reported_as_failed():
    pod = _pod(phase="Failed", conditions=[_scheduled()])
    pod["status"].update({"reason": "Evicted", "message": "The node was low on resource: memory."})
    cause = pod_cause(pod)
    assert cause is not None and cause.reason == POD_FAILED and "Evicted" in cause.message


def test_healthy_starting_and_terminating_pods_show_no_cause():
    creating = _pod(conditions=[_scheduled()], containers=[_waiting("ContainerCreating", "")])
    running = _pod(
        phase="Running",
        conditions=[_scheduled()],
        containers=[{"name": "server", "ready": True, "restartCount": 0, "state": {"running": {}}, "lastState": {}}],
    )
    gone = _pod(conditions=[_scheduled("False", "Unschedulable", NO_NODE)])
    gone["metadata"]["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    assert diagnose([creating, running, gone]) is None
    assert diagnose([]) is None


def test_most_telling_cause_wins_and_the_count_is_given():
    pending = _pod("demo-server-1", conditions=[_scheduled("False", "Unschedulable", NO_NODE)])
    pulling = _pod("demo-server-2", conditions=[_scheduled()], containers=[_waiting("ImagePullBackOff", PULL_MESSAGE)])
    cause = diagnose([pending, pulling])
    assert cause is not None and cause.reason == IMAGE_PULL_FAILED
    assert cause.message.startswith("pod demo-server-2") and cause.message.endswith("(2 pods affected)")
    assert len(cause.message) <= MAX_MESSAGE


def test_messages_are_bounded_and_mask_url_credentials():
    long = f"pull https://robot:{SECRET_VALUE}@registry.example/v2/x failed: " + "y" * 5000
    cause = diagnose([_pod(conditions=[_scheduled()], containers=[_waiting("ErrImagePull", long)])])
    assert cause is not None and len(cause.message) <= MAX_MESSAGE and cause.message.endswith("…")
    assert SECRET_VALUE not in cause.message and "https://***@registry.example" in cause.message


def test_env_values_never_reach_a_message():
    pods = [
        _pod(conditions=[_scheduled()], containers=[_waiting(r, "m")]) for r in ("ErrImagePull", "CrashLoopBackOff")
    ]
    pods.append(_pod(conditions=[_scheduled("False", "Unschedulable", NO_NODE)]))
    for pod in pods:
        cause = pod_cause(pod)
        assert cause is not None and SECRET_VALUE not in cause.message


def test_pods_are_split_by_component():
    pods = [_pod("a", "server"), _pod("b", "worker"), _pod("c", "redis"), _pod("d", "server")]
    assert [p["metadata"]["name"] for p in by_component(pods, "server")] == ["a", "d"]
    assert [p["metadata"]["name"] for p in by_component(pods, "redis")] == ["c"]


def test_explain_replaces_the_reason_and_appends_the_cause():
    pod = _pod(conditions=[_scheduled()], containers=[_waiting("ErrImagePull", "no such host")])
    cause = diagnose([pod])
    check = explain(Check(False, "ReplicasUnavailable", "server: 0/1 replicas available"), cause)
    assert check.reason == IMAGE_PULL_FAILED and not check.ok
    assert check.message.startswith("server: 0/1 replicas available: pod demo-server-7d9c-abcde: container server")
    # available, absent or not yet observed children keep their own words
    for unchanged in (
        Check(True, "Available", "server: 1/1"),
        Check(False, "NotFound", "server Deployment does not exist yet"),
        Check(False, "RolloutPending", "generation 2 not observed yet"),
    ):
        assert explain(unchanged, cause) == unchanged
    assert explain(Check(False, "NotReady", "Redis: 0/1 replicas ready"), None).reason == "NotReady"


def test_ready_takes_the_first_failing_reason_for_kubectl_get():
    checks = {
        "ServerAvailable": Check(False, IMAGE_PULL_FAILED, "server: 0/1"),
        "RedisReady": Check(False, CLAIM_UNBOUND, "Redis: 0/1"),
    }
    ready = ready_check(copy.deepcopy(checks))
    assert ready.reason == IMAGE_PULL_FAILED
    assert ready.message == "ServerAvailable: server: 0/1; RedisReady: Redis: 0/1"
