"""build_status is pure: a table of (old status, spec, observed children, Label Studio result) -> conditions
and events. Nothing here touches an API; the inputs are the plain dicts the steps hand over."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lsml_operator.builders import Spec
from lsml_operator.builders import labels as L
from lsml_operator.reconcile.build_status import build_status
from lsml_operator.reconcile.events import Event
from lsml_operator.reconcile.observed import ForeignObject, LabelStudioResult, Observed
from lsml_operator.status import Check
from tests.fixtures.mlbackend import example, with_identity

pytestmark = pytest.mark.unit

NS = "ns1"
NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"
UP = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
DOWN = {**UP, "readyReplicas": 0, "availableReplicas": 0}


def _mlb(**spec: Any) -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS)
    body["metadata"]["name"] = "demo"
    body["spec"].update(spec)
    return body


def _dep(name: str, status: dict[str, Any], config_hash: str = "") -> dict[str, Any]:
    ann = {"lsml.dev/config-hash": config_hash} if config_hash else {}
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {"replicas": 1, "template": {"metadata": {"annotations": ann}}},
        "status": status,
    }


def _sts(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "demo-redis", "namespace": NS, "generation": 1},
        "spec": {"replicas": 1},
        "status": status,
    }


def _observed(
    server: dict[str, Any] | None = UP,
    worker: dict[str, Any] | None = None,
    redis: dict[str, Any] | None = None,
    **kw: Any,
) -> Observed:
    live = {}
    if server is not None:
        live[("Deployment", NS, L.server_name("demo"))] = _dep("demo-server", server, "abc")
    if worker is not None:
        live[("Deployment", NS, L.worker_name("demo"))] = _dep("demo-worker", worker)
    if redis is not None:
        live[("StatefulSet", NS, L.redis_name("demo"))] = _sts(redis)
    return Observed(live=live, **kw)


NO_LS = LabelStudioResult(None, {})
LS_OK = LabelStudioResult(
    Check(True, "Registered", "registered in Label Studio (project 1: 7)"),
    {"backends": [{"project": 1, "id": 7, "modelVersion": "v3"}]},
)
LS_DOWN = LabelStudioResult(Check(False, "LabelStudioUnreachable", "project 1: unreachable"), {})
REDIS = {"managed": True}
WORKER = {"enabled": True}


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("spec", "observed", "ls", "expected"),
    [
        pytest.param(
            {},
            _observed(),
            NO_LS,
            {"Ready": ("True", "Ready"), "ServerAvailable": ("True", "Available")},
            id="minimal-ready",
        ),
        pytest.param(
            {},
            _observed(server=None),
            NO_LS,
            {"Ready": ("False", "NotFound"), "ServerAvailable": ("False", "NotFound")},
            id="server-missing",
        ),
        pytest.param(
            {},
            _observed(server=DOWN),
            NO_LS,
            {"Ready": ("False", "ReplicasUnavailable"), "ServerAvailable": ("False", "ReplicasUnavailable")},
            id="server-unavailable",
        ),
        pytest.param(
            {},
            _observed(server=DOWN, explained={"ServerAvailable": Check(False, "ImagePullFailed", "pull")}),
            NO_LS,
            {"Ready": ("False", "ImagePullFailed"), "ServerAvailable": ("False", "ImagePullFailed")},
            id="pods-explain-the-server",
        ),
        pytest.param(
            {"worker": WORKER},
            _observed(),
            NO_LS,
            {
                "Ready": ("False", "NotFound"),
                "ServerAvailable": ("True", "Available"),
                "WorkerAvailable": ("False", "NotFound"),
            },
            id="worker-missing",
        ),
        pytest.param(
            {"worker": WORKER, "redis": REDIS},
            _observed(worker=UP, redis={"observedGeneration": 1, "readyReplicas": 1}),
            NO_LS,
            {
                "Ready": ("True", "Ready"),
                "ServerAvailable": ("True", "Available"),
                "WorkerAvailable": ("True", "Available"),
                "RedisReady": ("True", "Ready"),
            },
            id="all-up",
        ),
        pytest.param(
            {"redis": REDIS},
            _observed(redis_auth_error="may not create Secret"),
            NO_LS,
            {
                "Ready": ("False", "PasswordSecretUnavailable"),
                "ServerAvailable": ("True", "Available"),
                "RedisReady": ("False", "PasswordSecretUnavailable"),
            },
            id="redis-secret-refused",
        ),
        pytest.param(
            {"redis": {"external": {"urlSecretRef": {"name": "r"}}}},
            _observed(),
            NO_LS,
            {"Ready": ("True", "Ready"), "ServerAvailable": ("True", "Available"), "RedisReady": ("True", "External")},
            id="external-redis",
        ),
        pytest.param(
            {},
            _observed(),
            LS_OK,
            {
                "Ready": ("True", "Ready"),
                "ServerAvailable": ("True", "Available"),
                "LabelStudioRegistered": ("True", "Registered"),
            },
            id="registered",
        ),
        pytest.param(
            {},
            _observed(),
            LS_DOWN,
            {
                "Ready": ("False", "LabelStudioUnreachable"),
                "ServerAvailable": ("True", "Available"),
                "LabelStudioRegistered": ("False", "LabelStudioUnreachable"),
            },
            id="label-studio-down",
        ),
        pytest.param(
            {},
            _observed(foreign=[ForeignObject("Service", NS, "demo")]),
            NO_LS,
            {
                "Ready": ("False", "ForeignObject"),
                "ServerAvailable": ("True", "Available"),
                "ChildrenOwned": ("False", "ForeignObject"),
            },
            id="foreign-child",
        ),
    ],
)
def test_conditions(spec, observed, ls, expected):
    result = build_status({}, Spec(_mlb(**spec)), observed, ls, now=NOW)
    assert _conds(result.status) == expected
    assert [c["type"] for c in result.status["conditions"]][0] == "Ready"
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] == NOW for c in result.status["conditions"])


def test_fields_besides_conditions():
    status = build_status({}, Spec(_mlb()), _observed(), LS_OK, now=NOW).status
    assert status["observedGeneration"] == 1 and status["replicas"] == 1 and status["readyReplicas"] == 1
    assert status["configHash"] == "abc" and status["modelVersion"] == "v3"
    assert status["url"] == "http://demo.ns1.svc:9090"
    assert status["labelStudio"] == LS_OK.status
    assert build_status({}, Spec(_mlb()), _observed(), NO_LS, now=NOW).status["labelStudio"] is None


def test_conditions_of_parts_the_spec_dropped_are_removed_and_unknown_ones_kept():
    before = build_status({}, Spec(_mlb(worker=WORKER, redis=REDIS)), _observed(worker=UP), LS_OK, now=NOW).status
    before["conditions"].append({"type": "SomethingElse", "status": "True", "reason": "Other"})
    after = build_status(before, Spec(_mlb()), _observed(), NO_LS, now=LATER).status
    assert set(_conds(after)) == {"Ready", "ServerAvailable", "SomethingElse"}


def test_transition_time_moves_only_on_a_flip_and_flips_become_events():
    first = build_status({}, Spec(_mlb()), _observed(server=DOWN), NO_LS, now=NOW)
    assert first.events == []  # nothing was True before: no "Not..." warning
    same = build_status(first.status, Spec(_mlb()), _observed(server=DOWN), NO_LS, now=LATER)
    assert same.events == [] and {c["lastTransitionTime"] for c in same.status["conditions"]} == {NOW}
    up = build_status(same.status, Spec(_mlb()), _observed(), NO_LS, now=LATER)
    assert up.events == [Event("Normal", "Ready", "all components are ready")]
    assert {c["lastTransitionTime"] for c in up.status["conditions"]} == {LATER}
    down = build_status(up.status, Spec(_mlb()), _observed(server=DOWN), NO_LS, now=LATER)
    assert [(e.type, e.reason) for e in down.events] == [("Warning", "NotReady"), ("Warning", "NotServerAvailable")]


def test_adoption_refused_is_an_event_once_per_message():
    foreign = _observed(foreign=[ForeignObject("Service", NS, "demo")])
    first = build_status({}, Spec(_mlb()), foreign, NO_LS, now=NOW)
    assert [e.reason for e in first.events] == ["AdoptionRefused"]
    again = build_status(first.status, Spec(_mlb()), foreign, NO_LS, now=LATER)
    assert again.events == []


def test_build_status_does_not_change_its_inputs():
    old = build_status({}, Spec(_mlb()), _observed(server=DOWN), LS_OK, now=NOW).status
    frozen, observed = copy.deepcopy(old), _observed()
    build_status(old, Spec(_mlb()), observed, LS_OK, now=LATER)
    assert old == frozen and observed == _observed()
