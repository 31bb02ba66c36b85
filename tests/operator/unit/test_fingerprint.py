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
