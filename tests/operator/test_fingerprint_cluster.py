"""The fingerprint of a child on the real API server: what makes a restarted operator write nothing.

Every child the builders make for a spec using every option (server, worker, managed Redis with its
NetworkPolicy, a model volume, an HPA, quantities the API server rewrites) is applied as the operator applies it;
the live object's fingerprint (our managedFields entry projected onto it) must equal the desired object's,
from the apply's answer and from a later GET alike. Someone else's change of a field our apply leaves out (the server's replicas, which
the HPA owns) must not change it; an edit of a field our apply set (an update by another field manager, as
``kubectl edit`` makes) must, and our apply must restore that field and leave the other.
"""

from __future__ import annotations

import copy
import json

import pytest

from lsml_operator.builders import desired_children
from lsml_operator.kube import Conflict, Kube
from lsml_operator.reconcile import fingerprint
from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example

from .cluster import UNWATCHED, apply_yaml, custom_api

pytestmark = pytest.mark.kubernetes
NAME = "fp-check"


@pytest.fixture
def owner(k8s_cluster, operator_release):
    """A real MLBackend in the namespace no operator watches: its uid keeps the children from garbage collection."""
    mlb = copy.deepcopy(example("mlbackend.yaml"))
    mlb["metadata"] = {"name": NAME, "namespace": UNWATCHED}
    mlb["spec"].pop("labelStudio", None)
    mlb["spec"].pop("basicAuth", None)
    mlb["spec"]["server"]["resources"] = {"requests": {"cpu": "0.5", "memory": "0.5Gi"}, "limits": {"memory": "1024Mi"}}
    mlb["spec"]["hpa"] = {"minReplicas": 1, "maxReplicas": 3}
    mlb["spec"]["storage"] = {"size": "1.5Gi"}
    apply_yaml(k8s_cluster, mlb, UNWATCHED)
    api = custom_api(k8s_cluster)
    live = wait_for(
        lambda: api.get_namespaced_custom_object("lsml.dev", "v1alpha1", UNWATCHED, "mlbackends", NAME),
        timeout=30,
        message="MLBackend created",
    )
    yield live
    k8s_cluster.kubectl("delete", "mlbackend", NAME, "-n", UNWATCHED, "--wait=false", check=False)


def _applies(obj: dict) -> list[tuple]:
    """The server-side apply entries of `managedFields`: a write by an apply would stamp a new time on its entry."""
    fields = obj["metadata"].get("managedFields") or []
    return [
        (f["manager"], f.get("time"), json.dumps(f.get("fieldsV1"), sort_keys=True))
        for f in fields
        if f["operation"] == "Apply"
    ]


def test_applied_children_fingerprint_as_their_desired_state_until_someone_edits_one(k8s_cluster, owner):
    kube = Kube(k8s_cluster.api_client())
    children = desired_children(owner, redis_auth_version="1")
    assert {c["kind"] for c in children} >= {
        "Deployment",
        "StatefulSet",
        "Service",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    }
    for child in children:
        # a new MLBackend's first write is a create-only apply: it must own the fields exactly as a plain apply does
        # (a cluster of an earlier run may still hold the child, its owner deleted: then a plain apply)
        meta = child["metadata"]
        fresh = kube.get(child["kind"], meta["namespace"], meta["name"]) is None
        answer = kube.apply(child, only_if_absent=fresh)
        live = kube.get(child["kind"], meta["namespace"], meta["name"])
        want = fingerprint.of_desired(child)
        assert fingerprint.of_live(answer) == want, f"{child['kind']} {meta['name']}: the apply's answer"
        assert fingerprint.of_live(live) == want, f"{child['kind']} {meta['name']}: a later read"
        # the name is taken now: a second create-only apply is refused and changes nothing
        with pytest.raises(Conflict):
            kube.apply(child, only_if_absent=True)
        after = kube.get(child["kind"], meta["namespace"], meta["name"])
        assert after["metadata"]["uid"] == live["metadata"]["uid"]
        if child["kind"] in ("Service", "NetworkPolicy", "PersistentVolumeClaim"):  # no controller writes these
            assert after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"], (
                f"{child['kind']} written"
            )
        else:  # their controllers write status (and an HPA has no generation): compare what an apply would touch
            assert after["spec"] == live["spec"], f"{child['kind']} spec written"
            assert _applies(after) == _applies(live), f"{child['kind']} applied again"
        assert fingerprint.of_live(after) == want

    server = next(c for c in children if c["kind"] == "Deployment" and c["metadata"]["name"].endswith("-server"))
    name = server["metadata"]["name"]
    assert "replicas" not in server["spec"], "the HPA owns the server's replicas: our apply leaves them out"
    # someone else sets a field our apply does not (the HPA scaling, here kubectl's patch): not ours, no change.
    # Within the HPA's bounds (1-3): kube-controller-manager's HPA controller cuts a count above maxReplicas back
    # within 15 s, metrics or not, and would race the assertions below; inside them, without a metrics API, it
    # leaves the count alone.
    k8s_cluster.kubectl(
        "patch", "deployment", name, "-n", UNWATCHED, "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}})
    )
    scaled = kube.get("Deployment", UNWATCHED, name)
    assert scaled["spec"]["replicas"] == 2
    assert fingerprint.of_live(scaled) == fingerprint.of_desired(server), "a scale by the HPA would cost an apply"
    # someone else's update of a field our apply set (kubectl's own field manager): the fingerprint moves
    k8s_cluster.kubectl("label", "deployment", name, "-n", UNWATCHED, "--overwrite", "app.kubernetes.io/part-of=x")
    edited = kube.get("Deployment", UNWATCHED, name)
    assert fingerprint.of_live(edited) != fingerprint.of_desired(server)
    # our apply takes the field back: in sync again, and the replicas it does not set stay the HPA's
    restored = kube.apply(server)
    assert fingerprint.of_live(restored) == fingerprint.of_desired(server)
    part_of = "app.kubernetes.io/part-of"
    assert restored["metadata"]["labels"][part_of] == server["metadata"]["labels"][part_of] != "x"
    assert restored["spec"]["replicas"] == 2


def test_a_create_only_apply_leaves_an_object_of_another_owner_as_it_was(k8s_cluster, owner):
    """The atomic check a new MLBackend's first write relies on: no look first, and still no takeover."""
    kube = Kube(k8s_cluster.api_client())
    service = next(c for c in desired_children(owner, redis_auth_version="1") if c["kind"] == "Service")
    service = copy.deepcopy(service)
    service["metadata"]["name"] = "fp-someone-elses"
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fp-someone-elses", "namespace": UNWATCHED, "labels": {"owner": "someone-else"}},
        "spec": {"selector": {"app": "foreign"}, "ports": [{"name": "web", "port": 80}]},
    }
    apply_yaml(k8s_cluster, foreign, UNWATCHED)
    try:
        before = kube.get("Service", UNWATCHED, "fp-someone-elses")
        with pytest.raises(Conflict):
            kube.apply(service, only_if_absent=True)
        after = kube.get("Service", UNWATCHED, "fp-someone-elses")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "not written"
        assert not after["metadata"].get("ownerReferences")
        assert after["spec"]["selector"] == {"app": "foreign"}
    finally:
        k8s_cluster.kubectl("delete", "service", "fp-someone-elses", "-n", UNWATCHED, "--ignore-not-found", check=False)
