"""spec.monitoring.serviceMonitor on the in-memory Kube: the ServiceMonitor the operator builds (selector, port,
auth by Secret reference), MonitoringReady when the CRD or the RBAC is missing (a backoff, not a hot loop,
and Ready untouched), recovery, deletion on disable. The real control plane (CRD installed and removed,
the chart's RBAC) is tests/operator/test_service_monitor.py."""

from __future__ import annotations

from typing import Any

import pytest

from lsml_operator.builders import Spec, config_hash, server_deployment, service, service_monitor
from lsml_operator.reconcile import Trigger
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE, Harness

pytestmark = pytest.mark.unit

NS = "ns1"
SM = ("ServiceMonitor", NS, "demo")


def _mlb(monitor: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid="uid-mlb-demo")
    body["metadata"]["name"] = "demo"
    body["spec"].update(spec)
    if monitor is not None:
        body["spec"]["monitoring"] = {"serviceMonitor": monitor}
    return body


def _cond(status: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    return next((c for c in (status or {}).get("conditions") or [] if c["type"] == ctype), None)


def _sm_calls(h: Harness) -> list[tuple[str, str, str]]:
    return [c for c in h.kube.calls if c[1] == "ServiceMonitor"]


def test_no_service_monitor_unless_the_spec_enables_it():
    assert service_monitor.build(_mlb()) is None
    assert service_monitor.build(_mlb({"enabled": False, "interval": "15s"})) is None


def test_the_service_monitor_selects_this_backends_server_service_and_its_http_port():
    mlb = _mlb({"enabled": True, "interval": "15s", "scrapeTimeout": "5s", "labels": {"release": "kps"}})
    sm = service_monitor.build(mlb)
    assert sm is not None
    svc = service.build(mlb)
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items(), "selects the server Service"
    assert selector["app.kubernetes.io/instance"] == "demo" and selector["app.kubernetes.io/component"] == "server"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", "15s", "5s")
    assert "basicAuth" not in endpoint
    assert endpoint["relabelings"] == [{"targetLabel": "mlbackend", "replacement": "demo", "action": "replace"}]
    meta = sm["metadata"]
    assert (meta["name"], meta["namespace"]) == ("demo", NS)
    assert meta["labels"]["release"] == "kps"
    assert meta["ownerReferences"][0]["uid"] == "uid-mlb-demo" and meta["ownerReferences"][0]["controller"]
    # the worker serves no HTTP: only the server pods are behind the selected Service
    pods = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pods.items()


def test_basic_auth_is_the_backends_own_secret_by_reference_and_our_labels_win():
    mlb = _mlb(
        {"enabled": True, "labels": {"app.kubernetes.io/managed-by": "me", "team": "a"}},
        basicAuth={"secretName": "demo-auth", "usernameKey": "user", "passwordKey": "pass"},
    )
    sm = service_monitor.build(mlb)
    assert sm is not None
    assert sm["spec"]["endpoints"][0]["basicAuth"] == {
        "username": {"name": "demo-auth", "key": "user"},
        "password": {"name": "demo-auth", "key": "pass"},
    }
    assert sm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lsml-operator"
    assert sm["metadata"]["labels"]["team"] == "a"


def test_monitoring_never_rolls_the_pods():
    assert config_hash(_mlb()) == config_hash(_mlb({"enabled": True, "interval": "10s"}))
    assert Spec(_mlb()).service_monitor_spec.enabled is False


def test_applied_and_ready_and_followed_and_deleted_on_disable(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    status = h.rec.reconcile(_mlb({"enabled": True}), Trigger.CREATE)
    assert SM in h.kube.objects
    c = _cond(status, "MonitoringReady")
    assert c and (c["status"], c["reason"]) == ("True", "ServiceMonitorApplied")
    assert _cond(status, "Ready")["status"] == "True"
    # quiet passes cost no request (nothing watches ServiceMonitors; our apply's answer is cached)
    h.kube.calls.clear()
    h.rec.reconcile(_mlb({"enabled": True}), Trigger.CHILD_EVENT)
    assert _sm_calls(h) == []
    h.rec.reconcile(_mlb({"enabled": True, "interval": "20s"}), Trigger.UPDATE)
    assert h.kube.objects[SM]["spec"]["endpoints"][0]["interval"] == "20s"
    status = h.rec.reconcile(_mlb({"enabled": False}), Trigger.UPDATE)
    assert SM not in h.kube.objects
    assert _cond(status, "MonitoringReady") is None
    assert "ChildDeleted" in h.reasons()


def test_without_the_crd_a_condition_and_one_event_then_backoff_and_recovery(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.unserved.add("ServiceMonitor")
    mlb = _mlb({"enabled": True})
    status = h.rec.reconcile(mlb, Trigger.CREATE)
    c = _cond(status, "MonitoringReady")
    assert c and (c["status"], c["reason"]) == ("False", "MonitoringUnavailable")
    assert "Prometheus Operator" in c["message"]
    assert _cond(status, "Ready")["status"] == "True", "scraping is not serving: Ready stays True"
    assert h.reasons().count("MonitoringUnavailable") == 1
    # child events meanwhile make no ServiceMonitor request (the backoff waits for the timer)
    h.kube.calls.clear()
    for _ in range(5):
        h.rec.reconcile(mlb, Trigger.CHILD_EVENT)
    assert _sm_calls(h) == []
    assert h.rec.tick_due(mlb) is None
    h.clock.now += h.settings.retry_base_seconds
    assert h.rec.tick_due(mlb) is Trigger.RETRY
    h.rec.reconcile(mlb, Trigger.RETRY)  # still missing: tried once more, no second event
    assert [c[0] for c in _sm_calls(h)].count("apply") == 1
    assert h.reasons().count("MonitoringUnavailable") == 1
    assert h.rec.tick_due(mlb) is None, "the next retry waits longer"
    # the CRD is installed: the next retry creates the object and says so
    h.kube.unserved.clear()
    h.clock.now += h.settings.retry_max_seconds
    status = h.rec.reconcile(mlb, h.rec.tick_due(mlb) or Trigger.RESYNC)
    assert SM in h.kube.objects
    assert _cond(status, "MonitoringReady")["status"] == "True"
    assert "MonitoringReady" in h.reasons()
    assert h.rec.tick_due(mlb) is None


def test_without_rbac_the_condition_names_the_chart_value_and_disable_is_quiet(harness):
    h = harness
    h.kube.forbidden.add("ServiceMonitor")
    status = h.rec.reconcile(_mlb({"enabled": True}), Trigger.CREATE)
    c = _cond(status, "MonitoringReady")
    assert c and (c["status"], c["reason"]) == ("False", "MonitoringForbidden")
    assert "monitoring.perMLBackend" in c["message"]
    # a spec without monitoring never fails on the prune's 403 (the operator could not have made one)
    status = h.rec.reconcile(_mlb(), Trigger.UPDATE)
    assert _cond(status, "MonitoringReady") is None


def test_a_foreign_service_monitor_of_that_name_is_left_alone(harness):
    h = harness
    h.kube.objects[SM] = {"kind": "ServiceMonitor", "metadata": {"name": "demo", "namespace": NS}, "spec": {"x": 1}}
    status = h.rec.reconcile(_mlb({"enabled": True}), Trigger.CREATE)
    assert h.kube.objects[SM]["spec"] == {"x": 1}
    assert _cond(status, "MonitoringReady")["reason"] == "ForeignObject"
    assert _cond(status, "ChildrenOwned")["status"] == "False"
    h.rec.reconcile(_mlb({"enabled": False}), Trigger.UPDATE)
    assert SM in h.kube.objects, "never deleted: not ours"


def test_forgetting_the_mlbackend_drops_its_monitoring_backoff(harness):
    h = harness
    h.kube.unserved.add("ServiceMonitor")
    mlb = _mlb({"enabled": True})
    h.rec.reconcile(mlb, Trigger.CREATE)
    assert h.rec.monitoring_backoff.failures(("ns1", "demo")) == 1
    h.rec.forget(("ns1", "demo"))
    assert h.rec.monitoring_backoff.failures(("ns1", "demo")) == 0


def test_a_service_monitor_the_api_server_refuses_is_a_condition_with_its_words_not_a_failed_pass(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.invalid_always.add(SM)
    status = h.rec.reconcile(_mlb({"enabled": True}), Trigger.CREATE)
    c = _cond(status, "MonitoringReady")
    assert c and (c["status"], c["reason"]) == ("False", "ServiceMonitorRefused")
    assert 'ServiceMonitor.monitoring.coreos.com "demo" is invalid' in c["message"]
    assert _cond(status, "ServerAvailable")["status"] == "True", "the rest of the pass ran"
    assert h.rec.tick_due(_mlb({"enabled": True})) is None, "retried on the backoff, not at once"


def test_a_backend_that_never_asked_costs_no_service_monitor_request(harness):
    h = harness
    h.kube.forbidden.add("ServiceMonitor")  # the chart's default RBAC
    for trigger in (Trigger.CREATE, Trigger.UPDATE, Trigger.RESUME, Trigger.RESYNC, Trigger.CHILD_EVENT):
        h.rec.reconcile(_mlb(), trigger)
    assert _sm_calls(h) == []


def test_disabled_while_the_operator_was_away_is_deleted_on_resume():
    h = Harness()
    h.rec.reconcile(_mlb({"enabled": True}), Trigger.CREATE)
    assert SM in h.kube.objects
    restarted = Harness(kube=h.kube)  # a new process: empty caches, the same cluster and status
    body = _mlb({"enabled": False})
    body["status"] = h.kube.status_writes[-1]
    restarted.rec.reconcile(body, Trigger.RESUME)
    assert SM not in h.kube.objects


def test_the_full_example_asks_for_a_service_monitor_with_its_basic_auth_secret():
    mlb = with_identity(example("mlbackend-full.yaml"))
    sm = service_monitor.build(mlb)
    assert sm is not None
    assert sm["spec"]["endpoints"][0]["basicAuth"]["password"]["name"] == mlb["spec"]["basicAuth"]["secretName"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
