"""spec.monitoring.serviceMonitor on the real control plane, through the chart's RBAC (the operator runs as its
ServiceAccount): without the chart value the condition says RBAC, with it but without the Prometheus
Operator's CRD it says the CRD is missing (and the operator keeps running), and once the CRD is installed the
ServiceMonitor appears with the right selector, port and Secret references, follows the spec, goes on
disable and with the MLBackend (garbage collection).

The CRD is tests/operator/data/servicemonitor-crd.yaml: a minimal structural one written for these tests
(the Prometheus Operator's field names and types for what lsml sets), not the vendored original.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import CHART, example

from .cluster import RELEASE, SYSTEM_NS, WATCHED, apply_yaml, condition, get_mlb, patch_mlb

pytestmark = pytest.mark.kubernetes
NS = WATCHED[0]
NAME = "sm-check"
CRD = Path(__file__).parent / "data" / "servicemonitor-crd.yaml"
CRD_NAME = "servicemonitors.monitoring.coreos.com"


def _service_monitor(cluster) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", CRD_NAME, NAME, "-n", NS, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _monitoring(cluster) -> dict[str, Any] | None:
    return condition(get_mlb(cluster, NS, NAME), "MonitoringReady")


def _wait_reason(cluster, reason: str) -> dict[str, Any]:
    return wait_for(
        lambda: (c := _monitoring(cluster)) is not None and c["reason"] == reason and c,
        timeout=60,
        message=f"MonitoringReady reason {reason} (now: {_monitoring(cluster)})",
    )


def _event_reasons(cluster) -> list[str]:
    out = cluster.kubectl(
        "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    ).stdout
    return [e.get("reason") for e in json.loads(out)["items"]]


def _set_per_mlbackend(cluster, on: bool) -> None:
    cluster.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM_NS,
        "--reuse-values",
        "--wait=false",
        "--set",
        f"monitoring.perMLBackend={'true' if on else 'false'}",
        timeout=180,
    )


def test_service_monitor_per_mlbackend_without_and_with_the_crd(k8s_cluster, running_operator):
    assert k8s_cluster.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0, "the CRD must start absent"
    k8s_cluster.kubectl(
        "create", "secret", "generic", f"{NAME}-auth", "-n", NS,
        "--from-literal=username=scraper", "--from-literal=password=s3cret-pw",
    )  # fmt: skip
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": NAME, "namespace": NS}
    mlb["spec"]["basicAuth"] = {"secretName": f"{NAME}-auth", "usernameKey": "username", "passwordKey": "password"}
    mlb["spec"]["monitoring"] = {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}}}
    log_start = len(running_operator.log())
    apply_yaml(k8s_cluster, mlb, NS)
    try:
        # 1. the chart's default: no RBAC on servicemonitors
        c = _wait_reason(k8s_cluster, "MonitoringForbidden")
        assert c["status"] == "False" and "monitoring.perMLBackend" in c["message"]
        wait_for(lambda: "MonitoringForbidden" in _event_reasons(k8s_cluster), timeout=30, message="event")
        # the backend itself is served all the same: the server Deployment and Service exist
        assert k8s_cluster.kubectl("get", "service", NAME, "-n", NS, check=False).returncode == 0

        # 2. RBAC granted, CRD still missing: the condition says so, the operator keeps running (no crash loop)
        _set_per_mlbackend(k8s_cluster, True)
        c = _wait_reason(k8s_cluster, "MonitoringUnavailable")
        assert "Prometheus Operator" in c["message"]
        wait_for(lambda: "MonitoringUnavailable" in _event_reasons(k8s_cluster), timeout=30, message="event")
        assert running_operator.running, running_operator.log_tail()

        # 3. the CRD appears: the next retry creates the ServiceMonitor
        k8s_cluster.kubectl("apply", "-f", str(CRD))
        k8s_cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        sm = wait_for(lambda: _service_monitor(k8s_cluster), timeout=60, message="ServiceMonitor created")
        assert _wait_reason(k8s_cluster, "ServiceMonitorApplied")["status"] == "True"
        owner = sm["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("MLBackend", NAME, True)
        assert sm["metadata"]["labels"]["release"] == "kps"
        svc = json.loads(k8s_cluster.kubectl("get", "service", NAME, "-n", NS, "-o", "json").stdout)
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        others = k8s_cluster.kubectl(
            "get", "services", "-n", NS, "-o", "name",
            "-l", ",".join(f"{k}={v}" for k, v in sm["spec"]["selector"]["matchLabels"].items()),
        ).stdout.split()  # fmt: skip
        assert others == [f"service/{NAME}"], "selects this backend's server Service only"
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
        (endpoint,) = sm["spec"]["endpoints"]
        assert endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
        assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")
        assert endpoint["basicAuth"] == {
            "username": {"name": f"{NAME}-auth", "key": "username"},
            "password": {"name": f"{NAME}-auth", "key": "password"},
        }
        assert "s3cret-pw" not in json.dumps(sm), "credentials by reference only"

        # 4. it follows the spec (and the pods do not roll for it)
        before = get_mlb(k8s_cluster, NS, NAME)["status"]["configHash"]
        patch_mlb(k8s_cluster, NS, NAME, {"monitoring": {"serviceMonitor": {"interval": "45s", "labels": None}}})
        wait_for(
            lambda: (s := _service_monitor(k8s_cluster)) and s["spec"]["endpoints"][0]["interval"] == "45s" and s,
            timeout=60,
            message="interval follows the spec",
        )
        assert "release" not in _service_monitor(k8s_cluster)["metadata"]["labels"]
        assert get_mlb(k8s_cluster, NS, NAME)["status"]["configHash"] == before

        # 5. disable: deleted, and the condition goes with it; enable again: back
        patch_mlb(k8s_cluster, NS, NAME, {"monitoring": {"serviceMonitor": {"enabled": False}}})
        wait_for(lambda: _service_monitor(k8s_cluster) is None, timeout=60, message="ServiceMonitor deleted")
        wait_for(lambda: _monitoring(k8s_cluster) is None, timeout=30, message="MonitoringReady removed")
        patch_mlb(k8s_cluster, NS, NAME, {"monitoring": {"serviceMonitor": {"enabled": True}}})
        wait_for(lambda: _service_monitor(k8s_cluster), timeout=60, message="ServiceMonitor re-created")

        # 6. the MLBackend goes: its ServiceMonitor is garbage-collected with it
        k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--timeout=60s")
        wait_for(lambda: _service_monitor(k8s_cluster) is None, timeout=120, message="ServiceMonitor collected")
        assert running_operator.running, running_operator.log_tail()
        assert "Traceback" not in running_operator.log()[log_start:], running_operator.log_tail()
    finally:
        k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
        k8s_cluster.kubectl("delete", "secret", f"{NAME}-auth", "-n", NS, "--ignore-not-found", check=False)
        k8s_cluster.kubectl("delete", "-f", str(CRD), "--ignore-not-found", "--timeout=60s", check=False)
        _set_per_mlbackend(k8s_cluster, False)
