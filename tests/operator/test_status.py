"""status.py unit tests: the standard condition shape and when lastTransitionTime moves."""

from __future__ import annotations

import pytest

from lsml_operator.status import (
    Check,
    deployment_check,
    ready_check,
    set_condition,
    statefulset_check,
    strip_volatile,
)

pytestmark = pytest.mark.unit


def test_last_transition_time_changes_only_when_status_flips():
    conds = set_condition([], "ServerAvailable", Check(False, "NotFound", "missing"), 1, "2026-01-01T00:00:00Z")
    assert conds == [
        {
            "type": "ServerAvailable",
            "status": "False",
            "reason": "NotFound",
            "message": "missing",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ]
    same = set_condition(conds, "ServerAvailable", Check(False, "RollingOut", "0/1 updated"), 2, "2026-01-01T00:05:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("RollingOut", 2)
    flipped = set_condition(same, "ServerAvailable", Check(True, "Available", "1/1"), 2, "2026-01-01T00:06:00Z")
    assert flipped[0]["status"] == "True" and flipped[0]["lastTransitionTime"] == "2026-01-01T00:06:00Z"


def test_conditions_are_ordered_with_ready_first():
    conds = []
    for t in ("LabelStudioRegistered", "ServerAvailable", "Ready"):
        conds = set_condition(conds, t, Check(True, "R", "m"), 1, "t")
    assert [c["type"] for c in conds] == ["Ready", "ServerAvailable", "LabelStudioRegistered"]


def _dep(generation=1, observed=1, want=2, updated=2, available=2, total=2):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": want},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "replicas": total,
        },
    }


def test_deployment_check_requires_observed_generation_updated_and_available():
    assert deployment_check(None, "server").reason == "NotFound"
    assert deployment_check(_dep(generation=2, observed=1), "server").reason == "RolloutPending"
    assert deployment_check(_dep(updated=1), "server").reason == "RollingOut"
    assert deployment_check(_dep(total=3), "server").reason == "RollingOut"  # old pods still terminating
    assert deployment_check(_dep(available=1), "server").reason == "ReplicasUnavailable"
    ok = deployment_check(_dep(), "server")
    assert ok.ok and ok.message == "server: 2/2 replicas available"


def test_statefulset_check():
    sts = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "readyReplicas": 0},
    }
    assert not statefulset_check(sts).ok
    sts["status"]["readyReplicas"] = 1
    assert statefulset_check(sts).ok


def test_ready_is_the_and_of_all_and_names_the_failing_ones():
    r = ready_check({"ServerAvailable": Check(True, "A", "ok"), "RedisReady": Check(False, "NotReady", "Redis: 0/1")})
    assert not r.ok and "RedisReady: Redis: 0/1" in r.message
    assert ready_check({"ServerAvailable": Check(True, "A", "ok")}).ok


def test_strip_volatile_ignores_only_timestamps():
    a = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}], "url": "u"}
    b = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t2"}], "url": "u"}
    assert strip_volatile(a) == strip_volatile(b)
    b["conditions"][0]["status"] = "False"
    assert strip_volatile(a) != strip_volatile(b)
