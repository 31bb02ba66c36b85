"""The fingerprint of a child (reconcile/fingerprint.py) on hand-made objects: what the API server changes in what
it stores is normalised away, what anyone else changes is not. tests/operator/test_fingerprint_cluster.py runs
every child kind through the real API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lsml_operator import FIELD_MANAGER
from lsml_operator.reconcile import fingerprint

pytestmark = pytest.mark.unit

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "r", "namespace": "ns", "labels": {"a": "1"}},
    "spec": {
        "replicas": 1,
        "template": {
            "spec": {
                "containers": [
                    {"name": "redis", "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}, "readOnly": False}
                ]
            }
        },
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
        ],
    },
}
OWNED = {
    "f:metadata": {"f:labels": {"f:a": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"redis"}': {
                        ".": {},
                        "f:name": {},
                        "f:resources": {"f:requests": {"f:cpu": {}, "f:memory": {}}},
                        "f:readOnly": {},
                    }
                }
            }
        },
        "f:volumeClaimTemplates": {},
    },
}


def _live() -> dict[str, Any]:
    """What the API server stores for DESIRED: canonical quantities, no false bool, its additions, other managers."""
    live = copy.deepcopy(DESIRED)
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["requests"] = {"cpu": "500m", "memory": "1024Mi"}
    del container["readOnly"]
    container["imagePullPolicy"] = "Always"  # a default: not ours
    template = live["spec"]["volumeClaimTemplates"][0]
    template["status"] = {"phase": "Pending"}
    template["spec"]["volumeMode"] = "Filesystem"
    live["metadata"]["annotations"] = {"controller": "x"}
    live["metadata"]["managedFields"] = [
        {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": copy.deepcopy(OWNED)},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:metadata": {}}},
    ]
    live["status"] = {"replicas": 1}
    return live


def test_a_stored_child_fingerprints_as_its_desired_state():
    assert fingerprint.of_live(_live()) == fingerprint.of_desired(DESIRED)


def test_an_edit_that_takes_a_field_from_our_apply_changes_the_fingerprint():
    live = _live()
    live["spec"]["replicas"] = 3  # kubectl scale: the field moves to kubectl's manager
    del live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"]
    assert fingerprint.of_live(live) != fingerprint.of_desired(DESIRED)


def test_a_value_changed_under_our_ownership_and_a_spec_change_are_seen():
    live = _live()
    live["metadata"]["labels"]["a"] = "2"
    assert fingerprint.of_live(live) != fingerprint.of_desired(DESIRED)
    changed = copy.deepcopy(DESIRED)
    changed["spec"]["replicas"] = 2
    assert fingerprint.of_live(_live()) != fingerprint.of_desired(changed)


def test_a_child_without_our_apply_entry_has_no_fingerprint():
    live = _live()
    live["metadata"]["managedFields"] = live["metadata"]["managedFields"][1:]
    assert fingerprint.of_live(live) is None


@pytest.mark.parametrize(("a", "b"), [("0.5", "500m"), ("1Gi", "1024Mi"), ("1", "1000m"), ("2k", "2000")])
def test_equal_quantities_are_equal(a, b):
    assert fingerprint.quantity(a) == fingerprint.quantity(b)
    assert fingerprint.quantity(a) != fingerprint.quantity("3")


def _status_write(live: dict[str, Any]) -> dict[str, Any]:
    """What a controller's status write changes: status, resourceVersion and its own managedFields entry."""
    after = copy.deepcopy(live)
    after["status"] = {"replicas": 1, "readyReplicas": 1}
    after["metadata"]["resourceVersion"] = "99"
    after["metadata"]["managedFields"][1] = {
        "manager": "kube-controller-manager",
        "operation": "Update",
        "subresource": "status",
        "fieldsV1": {"f:status": {"f:readyReplicas": {}}},
    }
    return after


def _label_edited(live: dict[str, Any]) -> dict[str, Any]:
    after = copy.deepcopy(live)
    after["metadata"]["labels"]["a"] = "2"
    return after


def _replicas_taken(live: dict[str, Any]) -> dict[str, Any]:
    """kubectl scale to the value we set: the value stays, the field leaves our entry."""
    after = copy.deepcopy(live)
    del after["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"]
    return after


def test_a_status_write_leaves_the_fingerprint_source_and_a_change_of_ours_moves_it():
    live = _live()
    source = fingerprint.live_source(live)
    assert source is not None
    assert fingerprint.live_source(_status_write(live)) == source
    assert fingerprint.live_source(_label_edited(live)) != source
    assert fingerprint.live_source(_replicas_taken(live)) != source, "the same values, fewer of them ours"


def test_no_source_when_our_entry_could_read_what_it_leaves_out():
    live = _live()
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:status"] = {"f:replicas": {}}
    assert fingerprint.live_source(live) is None
    live["metadata"]["managedFields"] = live["metadata"]["managedFields"][1:]
    assert fingerprint.live_source(live) is None


def test_the_cache_keeps_a_fingerprint_only_while_its_source_holds(monkeypatch):
    """A slim child made from the one before it has the fingerprint a fresh projection gives, through every
    kind of event; the projection runs again only when the source moved."""
    from lsml_operator.reconcile.child_cache import slim_child

    projections = []
    project = fingerprint.of_live
    monkeypatch.setattr(fingerprint, "of_live", lambda obj: projections.append(1) or project(obj))
    live = _live()
    known = slim_child(live)
    for change, projects in (
        (_status_write, False),
        (_label_edited, True),
        (_status_write, False),
        (_replicas_taken, True),
    ):
        projections.clear()
        live = change(live)
        known = slim_child(live, known)
        assert known["fingerprint"] == project(live), change.__name__
        assert bool(projections) is projects, change.__name__


def test_a_child_as_our_apply_left_it_is_not_canonicalised_again():
    """The skip-apply check asks for the desired fingerprint only when our last apply does not vouch for the child
    (after a restart, or a change): and then it compares with it."""
    from lsml_operator.reconcile.child_cache import ChildCache

    cache, ck, owner = ChildCache(), ("StatefulSet", "ns", "r"), ("ns", "mlb")
    asked: list[str] = []

    def desired(value: str) -> Any:
        return lambda: asked.append(value) or value

    cache.saw(owner, ck, _live())  # a restarted operator's watch: no apply of this process yet
    live_fp = fingerprint.of_live(_live())
    assert cache.unchanged_since_apply(ck, "d1", desired(live_fp)) is not None
    assert cache.unchanged_since_apply(ck, "d1", desired("other")) is None
    assert asked == [live_fp, "other"]
    asked.clear()
    cache.applied(owner, ck, "uid-1", "d1", _live(), since=cache.mark(ck))
    assert cache.unchanged_since_apply(ck, "d1", desired("other")) is not None, "our apply of d1 vouches"
    assert asked == []
    assert cache.unchanged_since_apply(ck, "d2", desired("other")) is None, "another desired state: compared"
    assert asked == ["other"]
