"""The chart's monitoring values: a PodMonitor/ServiceMonitor that selects what the operator really labels, and
the Grafana dashboard ConfigMap, whose queries name only metrics lsml registers.

`helm template` needs no cluster: these run the helm binary of the control-plane build (hack/test builds it
before pytest; a missing binary fails, as the cluster fixture does, with the command that builds it).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import yaml

from lsml_operator.builders import labels as L
from lsml_operator.builders import server_deployment, service
from tests.fixtures.kubernetes import controlplane
from tests.fixtures.mlbackend import CHART, example, with_identity

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dashboard_py = _load("lsml_dashboard", ROOT / "hack" / "docs" / "dashboard.py")


def _helm() -> str:
    bin_dir = controlplane.find_bin_dir()
    helm = Path(bin_dir) / "helm"
    assert helm.is_file(), f"no helm in {bin_dir}: build it with hack/control-plane/build.sh (hack/test does)"
    return str(helm)


def _template(*sets: str) -> list[dict]:
    args = [_helm(), "template", "rel", str(CHART), "--namespace", "lsml-system", "--kube-version=1.36.0"]
    for value in sets:
        args += ["--set", value]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _kinds(docs: list[dict]) -> set[str]:
    return {d["kind"] for d in docs}


def test_monitoring_is_off_by_default_so_the_prometheus_operator_crds_are_not_needed():
    docs = _template()
    assert not _kinds(docs) & {"PodMonitor", "ServiceMonitor"}
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "lsml.json" in (d.get("data") or {})]


def test_the_pod_monitor_selects_the_server_pods_the_operator_builds():
    docs = _template("monitoring.enabled=true")
    (monitor,) = [
        d for d in docs if d["kind"] == "PodMonitor" and d["metadata"]["name"] == "rel-lsml-operator-backends"
    ]
    mlb = with_identity(example("mlbackend.yaml"))
    pod_labels = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), f"{selector} does not select the server pods ({pod_labels})"
    assert selector["app.kubernetes.io/component"] == L.SERVER  # not the worker or Redis pods
    assert monitor["spec"]["namespaceSelector"] == {"any": True}  # cluster-wide install
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["relabelings"][0]["targetLabel"] == "mlbackend"
    assert "basicAuth" not in endpoint


def test_the_operator_pod_monitor_scrapes_the_port_the_operator_serves_its_metrics_on():
    docs = _template("monitoring.enabled=true", "operator.metricsPort=9100")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert "--metrics-port=9100" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9100
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor" and d["metadata"]["name"] == "rel-lsml-operator"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    off = _template("monitoring.enabled=true", "operator.metricsPort=0")
    assert [d["metadata"]["name"] for d in off if d["kind"] == "PodMonitor"] == ["rel-lsml-operator-backends"]
    assert "--metrics-port" not in " ".join(
        next(d for d in off if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_the_service_monitor_selects_the_mlbackend_services_in_the_watched_namespaces():
    docs = _template(
        "monitoring.enabled=true",
        "monitoring.kind=ServiceMonitor",
        "watchNamespaces={team-a,team-b}",
        "monitoring.basicAuth.secretName=metrics-auth",
        "monitoring.labels.release=kube-prometheus-stack",
    )
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    svc = service.build(with_identity(example("mlbackend.yaml")))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [p["name"] for p in svc["spec"]["ports"]] == [monitor["spec"]["endpoints"][0]["port"]]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    auth = monitor["spec"]["endpoints"][0]["basicAuth"]
    assert auth["username"] == {"name": "metrics-auth", "key": "username"}
    assert auth["password"] == {"name": "metrics-auth", "key": "password"}


def _servicemonitor_rules(docs: list[dict]) -> list[dict]:
    return [
        r
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for r in d["rules"]
        if "servicemonitors" in r.get("resources", [])
    ]


def test_per_mlbackend_service_monitors_grant_rbac_only_when_enabled_and_need_no_crd():
    assert _servicemonitor_rules(_template()) == []
    for mode in ([], ["watchNamespaces={team-a,team-b}"]):
        docs = _template("monitoring.perMLBackend=true", *mode)
        rules = _servicemonitor_rules(docs)
        assert rules and all(r["apiGroups"] == ["monitoring.coreos.com"] for r in rules)
        assert all(sorted(r["verbs"]) == ["create", "delete", "get", "patch"] for r in rules)  # no list/watch
        assert len(rules) == (2 if mode else 1)  # a Role per watched namespace, else the ClusterRole
        # the chart itself renders no monitoring.coreos.com object: the CRDs are needed only when an MLBackend asks
        assert not _kinds(docs) & {"PodMonitor", "ServiceMonitor"}


def test_the_dashboard_configmap_carries_the_dashboard_with_the_sidecar_label():
    docs = _template("monitoring.grafanaDashboard.enabled=true", "monitoring.grafanaDashboard.namespace=grafana")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and "lsml.json" in d["data"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "grafana"
    assert json.loads(cm["data"]["lsml.json"]) == dashboard_py.dashboard()


def test_the_committed_dashboard_is_what_hack_docs_dashboard_py_writes():
    assert dashboard_py.OUT.read_text() == dashboard_py.render(), "run: .venv/bin/python hack/docs/dashboard.py"


def _series_names() -> set[str]:
    """Every series name lsml exposes (a counter's _total, a histogram's _bucket/_sum/_count)."""
    reference = _load("lsml_docs_reference", ROOT / "hack" / "docs" / "reference.py")
    names = set()
    for c in reference.metric_collectors():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(c._type, [""])
        names |= {c._name + s for s in suffixes}
    return names


def test_every_dashboard_query_names_only_metrics_lsml_registers():
    exposed = _series_names()
    queries = [t["expr"] for p in dashboard_py.dashboard()["panels"] for t in p["targets"]]
    assert len(queries) >= 10
    used = {name for q in queries for name in re.findall(r"\blsml_[a-z_]+\b", q)}
    unknown = used - exposed
    assert not unknown, f"the dashboard queries metrics nobody exposes: {sorted(unknown)}"
    # what the issue asks the dashboard to show, each by its metric
    for wanted in (
        "lsml_http_requests_total",
        "lsml_http_request_duration_seconds_bucket",
        "lsml_http_errors_total",
        "lsml_training_queue_depth",
        "lsml_model_version_number",
        "lsml_model_fit_seconds",
        "lsml_model_load_seconds_count",
        "lsml_prelabel_tasks_done",
        "lsml_operator_reconciles_total",
        "lsml_operator_registration_failures_total",
        "lsml_operator_mlbackends",
    ):
        assert wanted in used, f"no panel shows {wanted}"
