"""API paths from names: a name that is not a Kubernetes object name never becomes a path.

The real traversal (urllib3 resolving `../` before the API server sees it) is shown against the control plane
in tests/operator/test_security.py::test_a_secret_name_with_dot_segments_reads_nothing_of_another_namespace.
"""

from __future__ import annotations

import pytest

from lsml_operator.kube import _path, is_object_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["../../kube-system/secrets/x", "..", ".", "a/b", "A", "-a", "a-", "a b", "", "x" * 254]
)
def test_a_name_that_is_not_an_object_name_is_refused(name):
    assert not is_object_name(name)
    with pytest.raises(ValueError, match="not a Kubernetes object name"):
        _path("v1", "secrets", "ns", name)
    with pytest.raises(ValueError, match="not a Kubernetes object name"):
        _path("v1", "secrets", name or "..", "x")


@pytest.mark.parametrize("name", ["token", "my-secret.v2", "a", "0", "x" * 253])
def test_object_names_make_paths(name):
    assert _path("v1", "secrets", "lsml-op-a", name) == f"/api/v1/namespaces/lsml-op-a/secrets/{name}"
    assert _path("apps/v1", "deployments", "ns") == "/apis/apps/v1/namespaces/ns/deployments"
