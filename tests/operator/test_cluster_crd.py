"""The API server's verdict on MLBackends: schema, defaults and CEL rules, examples, scale subresource.

Runs against the real control plane (kube-apiserver with the CRD the chart installed), in a
namespace the operator does not watch: this is about admission, not reconciliation.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from tests.fixtures.mlbackend import EXAMPLES, FREE_POD_ANNOTATIONS, RESERVED_POD_ANNOTATIONS, example

from .cluster import UNWATCHED

pytestmark = pytest.mark.kubernetes


def _dry_run(cluster, doc):
    return cluster.kubectl(
        "create", "--dry-run=server", "-n", UNWATCHED, "-o", "json", "-f", "-", input=yaml.safe_dump(doc), check=False
    )


def _minimal(name="crd-check"):
    doc = copy.deepcopy(example("mlbackend-minimal.yaml"))
    doc["metadata"]["name"] = name
    return doc


def _spec_with(**spec):
    doc = _minimal()
    doc["spec"].update(spec)
    return doc


INVALID = [
    (
        "worker-without-redis",
        _spec_with(worker={"enabled": True}, storage={"size": "1Gi"}),
        "spec.worker.enabled requires spec.redis",
    ),
    (
        "worker-without-storage",
        _spec_with(worker={"enabled": True}, redis={"managed": True}),
        "spec.worker.enabled requires spec.storage",
    ),
    (
        "redis-both",
        _spec_with(redis={"managed": True, "external": {"urlSecretRef": {"name": "r"}}}),
        "set exactly one of managed: true or external.urlSecretRef",
    ),
    (
        "redis-neither",
        _spec_with(redis={"managed": False}),
        "set exactly one of managed: true or external.urlSecretRef",
    ),
    (
        "storage-both",
        _spec_with(storage={"size": "1Gi", "existingClaim": "c"}),
        "set exactly one of size (a new claim) or existingClaim",
    ),
    (
        "storage-class-with-existing",
        _spec_with(storage={"existingClaim": "c", "storageClassName": "fast"}),
        "apply to a new claim, not to existingClaim",
    ),
    (
        "storage-read-only-many",
        _spec_with(storage={"size": "1Gi", "accessModes": ["ReadOnlyMany"]}),
        "use ReadWriteOnce (pods are kept on one node) or ReadWriteMany",
    ),
    (
        "storage-read-write-once-pod",
        _spec_with(storage={"size": "1Gi", "accessModes": ["ReadWriteOncePod"]}),
        "use ReadWriteOnce (pods are kept on one node) or ReadWriteMany",
    ),
    (
        "hpa-min-over-max",
        _spec_with(hpa={"minReplicas": 5, "maxReplicas": 2}),
        "spec.hpa.minReplicas must be <= spec.hpa.maxReplicas",
    ),
    (
        "basic-auth-one-key",
        _spec_with(basicAuth={"secretName": "s", "usernameKey": "u"}),
        "name both usernameKey and passwordKey",
    ),
    ("score-strategy", _spec_with(model={"scoreStrategy": "random"}), 'Unsupported value: "random"'),
    (
        "pin-bad-project",
        _spec_with(model={"pinnedVersions": {"five": "v2"}}),
        "pinnedVersions keys must be project ids or *",
    ),
    ("pin-bad-version", _spec_with(model={"pinnedVersions": {"*": "latest"}}), "spec.model.pinnedVersions"),
    ("negative-replicas", _spec_with(server={"replicas": -1}), "should be greater than or equal to 0"),
    (
        "bad-quantity",
        _spec_with(server={"resources": {"limits": {"memory": "lots"}}}),
        "spec.server.resources.limits.memory",
    ),
    (
        "no-projects",
        _spec_with(labelStudio={"url": "http://ls:8080", "apiTokenSecretRef": {"name": "t"}, "projects": []}),
        "should have at least 1 items",
    ),
    (
        "service-monitor-bad-interval",
        _spec_with(monitoring={"serviceMonitor": {"enabled": True, "interval": "30 seconds"}}),
        "spec.monitoring.serviceMonitor.interval",
    ),
    (
        "service-monitor-bad-label-key",
        _spec_with(monitoring={"serviceMonitor": {"enabled": True, "labels": {"not a key": "x"}}}),
        "every key must be a Kubernetes label key",
    ),
    (
        "service-monitor-bad-label-value",
        _spec_with(monitoring={"serviceMonitor": {"labels": {"release": "a b"}}}),
        "spec.monitoring.serviceMonitor.labels",
    ),
    (
        "token-secret-path",
        _spec_with(
            labelStudio={
                "url": "http://ls:8080",
                "apiTokenSecretRef": {"name": "../../kube-system/secrets/x"},
                "projects": [1],
            }
        ),
        "spec.labelStudio.apiTokenSecretRef.name",
    ),
    (
        "basic-auth-secret-path",
        _spec_with(basicAuth={"secretName": "../x", "usernameKey": "u", "passwordKey": "p"}),
        "spec.basicAuth.secretName",
    ),
    ("config-map-path", _spec_with(model={"configMapName": "a/b"}), "spec.model.configMapName"),
    (
        "bad-ls-url",
        _spec_with(labelStudio={"url": "ls:8080", "apiTokenSecretRef": {"name": "t"}, "projects": [1]}),
        "spec.labelStudio.url",
    ),
]


@pytest.mark.parametrize("case,doc,message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_mlbackend_is_rejected_with_a_clear_message(k8s_cluster, operator_release, case, doc, message):
    proc = _dry_run(k8s_cluster, doc)
    assert proc.returncode != 0, f"{case} was accepted: {proc.stdout}"
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("key", sorted(RESERVED_POD_ANNOTATIONS))
def test_reserved_pod_annotations_are_refused_naming_the_key(k8s_cluster, operator_release, key):
    """Issue 22 item 11: the operator's lsml.dev/* keys and sandbox annotations are refused, the message naming the key."""
    proc = _dry_run(k8s_cluster, _spec_with(server={"podAnnotations": {key: RESERVED_POD_ANNOTATIONS[key]}}))
    assert proc.returncode != 0, f"{key} was accepted: {proc.stdout}"
    assert "spec.server.podAnnotations" in proc.stderr and f"annotation {key} is reserved" in proc.stderr, proc.stderr
    assert "restricted security context" in proc.stderr, proc.stderr


def test_other_pod_annotations_are_accepted(k8s_cluster, operator_release):
    proc = _dry_run(k8s_cluster, _spec_with(server={"podAnnotations": FREE_POD_ANNOTATIONS}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["server"]["podAnnotations"] == FREE_POD_ANNOTATIONS


def test_missing_image_and_bad_name_rejected(k8s_cluster, operator_release):
    doc = _minimal()
    del doc["spec"]["image"]
    proc = _dry_run(k8s_cluster, doc)
    assert proc.returncode != 0 and "spec.image: Required value" in proc.stderr, proc.stderr
    proc = _dry_run(k8s_cluster, _minimal(name="x" * 45))
    assert proc.returncode != 0 and "DNS-1035 label of at most 40 characters" in proc.stderr, proc.stderr


def test_api_server_applies_defaults(k8s_cluster, operator_release):
    proc = _dry_run(k8s_cluster, _minimal())
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout)["spec"]
    assert spec["server"]["replicas"] == 1 and spec["server"]["containerPort"] == 9090
    assert spec["service"] == {"port": 9090, "type": "ClusterIP"}
    assert spec["worker"] == {"enabled": False, "replicas": 1}
    assert spec["model"]["modelDir"] == "/data/models"
    assert spec["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("name", ["mlbackend-minimal.yaml", "mlbackend.yaml", "mlbackend-full.yaml"])
def test_examples_apply_with_kubectl(k8s_cluster, operator_release, name):
    path = EXAMPLES / name
    k8s_cluster.kubectl("apply", "-n", UNWATCHED, "-f", str(path))
    try:
        mlb = example(name)
        got = json.loads(
            k8s_cluster.kubectl("get", "mlb", mlb["metadata"]["name"], "-n", UNWATCHED, "-o", "json").stdout
        )
        assert got["spec"]["image"] == mlb["spec"]["image"]
    finally:
        k8s_cluster.kubectl("delete", "-n", UNWATCHED, "--wait=false", "-f", str(path), check=False)


def test_scale_subresource_and_printer_columns(k8s_cluster, operator_release):
    doc = _minimal("scale-check")
    k8s_cluster.kubectl("apply", "-n", UNWATCHED, "-f", "-", input=yaml.safe_dump(doc))
    try:
        k8s_cluster.kubectl("scale", "mlb/scale-check", "-n", UNWATCHED, "--replicas=3")
        got = json.loads(k8s_cluster.kubectl("get", "mlbackend", "scale-check", "-n", UNWATCHED, "-o", "json").stdout)
        assert got["spec"]["server"]["replicas"] == 3
        header = k8s_cluster.kubectl("get", "mlb", "-n", UNWATCHED).stdout.splitlines()[0].split()
        assert header[:7] == ["NAME", "READY", "REASON", "REPLICAS", "URL", "MODEL", "VERSION"] and header[-1] == "AGE"
        wide = k8s_cluster.kubectl("get", "mlb", "-n", UNWATCHED, "-o", "wide").stdout.splitlines()[0].split()
        assert wide[-2:] == ["AGE", "MESSAGE"]
    finally:
        k8s_cluster.kubectl("delete", "mlb", "scale-check", "-n", UNWATCHED, "--wait=false", check=False)


def test_kubectl_get_mlb_shows_what_is_pinned(k8s_cluster, operator_release):
    doc = _minimal("pin-check")
    doc["spec"]["model"] = {"pinnedVersions": {"*": "v3", "5": "v2"}}
    k8s_cluster.kubectl("apply", "-n", UNWATCHED, "-f", "-", input=yaml.safe_dump(doc))
    try:
        lines = k8s_cluster.kubectl("get", "mlb", "pin-check", "-n", UNWATCHED).stdout.splitlines()
        assert "PINNED" in lines[0].split()
        assert '"*":"v3"' in lines[1] and '"5":"v2"' in lines[1], lines
    finally:
        k8s_cluster.kubectl("delete", "mlb", "pin-check", "-n", UNWATCHED, "--wait=false", check=False)
