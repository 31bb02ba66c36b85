"""`Kube.names` on the real API server: the one request of the operator's audit (lsml_operator/reconcile/audit.py).

Metadata only (the API server answers a `PartialObjectMetadataList`), selected by label, every page of a paginated
LIST followed; nothing unlabelled, nothing from another namespace.
"""

from __future__ import annotations

import pytest

from lsml_operator.kube import METADATA_ONLY, Kube
from lsml_operator.reconcile.audit import CHILD_SELECTOR, CHILD_SELECTOR_STRING

pytestmark = pytest.mark.kubernetes

NS = "lsml-audit-names"
OTHER_NS = "lsml-audit-names-other"


def _service(name: str, namespace: str, labelled: bool) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(CHILD_SELECTOR) if labelled else {}},
        "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": name}},
    }


@pytest.fixture
def namespaces(k8s_cluster):
    for ns in (NS, OTHER_NS):
        k8s_cluster.kubectl("create", "namespace", ns, check=False)
    yield
    for ns in (NS, OTHER_NS):
        k8s_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_names_lists_every_page_of_the_labelled_objects_of_one_namespace_as_metadata(k8s_cluster, namespaces):
    kube = Kube(k8s_cluster.api_client())
    labelled = {f"svc-{i}" for i in range(5)}
    for name in labelled:
        kube.apply(_service(name, NS, labelled=True))
    kube.apply(_service("not-ours", NS, labelled=False))
    kube.apply(_service("elsewhere", OTHER_NS, labelled=True))

    assert kube.names("Service", NS, CHILD_SELECTOR_STRING, page=2) == labelled, (
        "three pages of two, followed to the end"
    )
    assert kube.names("Service", NS, CHILD_SELECTOR_STRING) == labelled, "one page"
    assert kube.names("Deployment", NS, CHILD_SELECTOR_STRING) == set()

    got = kube._call(
        "GET",
        f"/api/v1/namespaces/{NS}/services",
        query=[("labelSelector", CHILD_SELECTOR_STRING)],
        accept=METADATA_ONLY,
    )
    assert got["kind"] == "PartialObjectMetadataList", "the API server sent metadata only"
    assert all("spec" not in item for item in got["items"])
