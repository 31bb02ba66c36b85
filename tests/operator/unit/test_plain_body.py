"""The copy of kopf's body a pass works on (``main._plain``): equal to it, and nothing a pass does to it reaches
kopf's own, which kopf diffs and patches from."""

from __future__ import annotations

import kopf
import pytest

from lsml_operator.main import _plain

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("replicas", [2, 2**70], ids=["json", "an integer orjson refuses"])
def test_the_copy_is_equal_and_its_own(replicas):
    raw = {
        "apiVersion": "lsml.dev/v1alpha1",
        "kind": "MLBackend",
        "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "1"}},
        "spec": {"server": {"replicas": replicas, "env": [{"name": "X", "value": "1"}]}, "ratio": 0.5},
    }
    body = kopf.Body(raw)
    copied = _plain(body)
    assert copied == raw
    assert type(copied) is dict
    copied["metadata"]["labels"]["a"] = "2"
    copied["spec"]["server"]["env"].append({"name": "Y"})
    assert raw["metadata"]["labels"] == {"a": "1"}
    assert raw["spec"]["server"]["env"] == [{"name": "X", "value": "1"}]
