"""peering.problem with an in-memory API: what the operator says before kopf would wait forever.
(The same against a real API server: test_peering_absent.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from lsml_operator import peering

pytestmark = pytest.mark.unit


class Discovery:
    def __init__(self, served: set[str], objects: set[tuple[str | None, str]]) -> None:
        self.served, self.objects = served, objects

    def serves(self, group_version: str, plural: str) -> bool:
        return group_version == "kopf.dev/v1" and plural in self.served

    def get_custom(self, group_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if (namespace, name) in self.objects else None


def test_missing_crd_names_the_crd_file_and_standalone():
    msg = peering.problem(Discovery(set(), set()), clusterwide=False, namespaces=["a", "b"], name="lsml-operator")  # type: ignore[arg-type]
    assert msg is not None
    assert (
        "kopfpeerings.kopf.dev is not installed" in msg
        and "kubectl apply -f charts/lsml-operator/crds/kopf-peering.yaml" in msg
    )
    assert "KopfPeering 'lsml-operator' in namespace(s) a, b" in msg and "--standalone" in msg
    cw = peering.problem(Discovery({"kopfpeerings"}, set()), clusterwide=True, namespaces=[], name="p")  # type: ignore[arg-type]
    assert cw is not None and "clusterkopfpeerings.kopf.dev is not installed" in cw and "ClusterKopfPeering 'p'" in cw


def test_missing_objects_are_named_per_namespace():
    kube = Discovery({"kopfpeerings"}, {("a", "lsml-operator")})
    msg = peering.problem(kube, clusterwide=False, namespaces=["a", "b"], name="lsml-operator")  # type: ignore[arg-type]
    assert msg is not None and "KopfPeering 'lsml-operator' does not exist in namespace(s) b," in msg
    kube.objects.add(("b", "lsml-operator"))
    assert peering.problem(kube, clusterwide=False, namespaces=["a", "b"], name="lsml-operator") is None  # type: ignore[arg-type]
    cluster = Discovery({"clusterkopfpeerings"}, {(None, "lsml-operator")})
    assert peering.problem(cluster, clusterwide=True, namespaces=[], name="lsml-operator") is None  # type: ignore[arg-type]
