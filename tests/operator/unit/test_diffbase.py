"""The operator's diff base storage gives kopf the essence kopf's own builds, from a body with everything kopf keeps
and drops: were they to differ, every MLBackend would look changed to kopf after an upgrade (one update each)."""

from __future__ import annotations

import copy
import json

import kopf
import pytest

from lsml_operator import GROUP
from lsml_operator.diffbase import EssenceDiffBaseStorage

pytestmark = pytest.mark.unit

KEY = "last-handled-configuration"
BODY = {
    "apiVersion": "lsml.dev/v1alpha1",
    "kind": "MLBackend",
    "metadata": {
        "name": "m",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "17",
        "generation": 3,
        "labels": {"team": "vision"},
        "annotations": {
            "note": "kept",
            f"{GROUP}/{KEY}": json.dumps({"spec": {"model": {"image": "old"}}}),  # kopf's own: not in the essence
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
        "ownerReferences": [{"kind": "Thing", "name": "t", "uid": "o-1"}],
        "finalizers": [f"{GROUP}/finalizer"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:model": {}}}}],
    },
    "spec": {"model": {"image": "new"}, "server": {"replicas": 2, "env": [{"name": "X", "value": "1"}]}},
    "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
}


@pytest.mark.parametrize("extra_fields", [None, [], ["status.phase"], ["metadata.generation"]])
def test_the_essence_is_kopfs_own(extra_fields):
    ours = EssenceDiffBaseStorage(prefix=GROUP, key=KEY)
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key=KEY)
    body = kopf.Body(copy.deepcopy(BODY))
    essence = ours.build(body=body, extra_fields=extra_fields)
    assert essence == kopfs.build(body=body, extra_fields=extra_fields)
    assert essence["spec"] == BODY["spec"], "a precondition: the essence holds the spec"
    essence["spec"]["server"]["env"].append({"name": "Y"})
    assert body["spec"]["server"]["env"] == [{"name": "X", "value": "1"}], "the essence is a copy"


def test_a_stored_essence_reads_back_as_no_change():
    """What kopf stores (``store``) from our essence, fetched from the body, is equal to the next build."""
    ours = EssenceDiffBaseStorage(prefix=GROUP, key=KEY)
    body = kopf.Body(copy.deepcopy(BODY))
    patch = kopf.Patch()
    ours.store(body=body, patch=patch, essence=ours.build(body=body))
    stored = copy.deepcopy(BODY)
    stored["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    again = kopf.Body(stored)
    assert ours.fetch(body=again) == ours.build(body=again)
