"""The harness' client rate limit for the controllers and the scheduler (``ControlPlane.client_qps``).

bench/operator.py raises it (``--controller-qps``) to measure the operator against the control plane's own pace:
at upstream's 20 requests/s per controller, 1,000 MLBackends' pods and claims take many minutes to roll out. The
tests' clusters keep upstream's defaults, so the flags must be absent unless asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.kubernetes import controlplane

pytestmark = pytest.mark.unit


def test_upstream_rate_limits_unless_a_client_qps_is_set() -> None:
    assert controlplane.ControlPlane(bin_dir=Path("/nonexistent"))._client_rate_flags() == []


def test_a_client_qps_sets_the_rate_and_twice_the_burst() -> None:
    plane = controlplane.ControlPlane(bin_dir=Path("/nonexistent"), client_qps=200)
    assert plane._client_rate_flags() == ["--kube-api-qps=200", "--kube-api-burst=400"]
