"""The Helm chart: lint, template, and what ``helm install`` created in the real control plane,
including least-privilege RBAC checked with ``kubectl auth can-i --as=<the operator's ServiceAccount>``."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import CHART, REPO

from .cluster import SA, SYSTEM_NS, UNWATCHED, WATCHED

pytestmark = pytest.mark.kubernetes
AS = f"--as=system:serviceaccount:{SYSTEM_NS}:{SA}"


def _template(cluster, *args):
    out = cluster.helm(
        "template", "lsml-operator", str(CHART), "--namespace", SYSTEM_NS, "--kube-version=1.36.0", *args
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("values", [None, "ci/namespaced-values.yaml", "ci/clusterwide-values.yaml"])
def test_helm_lint(k8s_cluster, values):
    args = ["lint", str(CHART), "--strict"]
    if values:
        args += ["-f", str(CHART / values)]
    out = k8s_cluster.helm(*args).stdout
    assert "0 chart(s) failed" in out


def test_the_default_memory_limit_holds_a_restart_among_a_thousand_mlbackends(k8s_cluster):
    """The operator peaks in a restart's first pass (kopf lists every MLBackend and child at once); a limit under
    that peak would kill it in every first pass again. The peak is the newest measurement at 1,000 MLBackends of
    the full spec (bench/README.md, Operator), with a fifth more for the next machine's noise."""
    from lsml_operator.reconcile.fingerprint import quantity

    measured = json.loads((REPO / "bench" / "results" / "operator-1000-restart-memory.json").read_text())
    peak_bytes = measured["restart_operator_peak_rss_mb"] * 2**20
    dep = next(d for d in _template(k8s_cluster) if d["kind"] == "Deployment")
    limit = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert quantity(limit).startswith("q:")
    assert float(quantity(limit)[2:]) >= 1.2 * peak_bytes, f"limit {limit} under 1.2 x the restart's peak"


def test_template_namespaced_has_roles_only_in_watched_namespaces(k8s_cluster):
    docs = _template(k8s_cluster, "-f", str(CHART / "ci/namespaced-values.yaml"))
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in docs]
    assert ("ClusterRole", None) not in kinds and ("ClusterRoleBinding", None) not in kinds
    assert sorted(ns for k, ns in kinds if k == "Role") == ["lsml-ci-a", "lsml-ci-b"]
    assert sorted(ns for k, ns in kinds if k == "KopfPeering") == ["lsml-ci-a", "lsml-ci-b"]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=lsml-ci-a" in c["args"] and "--namespace=lsml-ci-b" in c["args"]
    assert "--all-namespaces" not in c["args"] and "--standalone" not in c["args"]
    assert dep["spec"]["replicas"] == 2
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_template_clusterwide_uses_cluster_role(k8s_cluster):
    docs = _template(k8s_cluster, "-f", str(CHART / "ci/clusterwide-values.yaml"))
    kinds = {d["kind"] for d in docs}
    assert {"ClusterRole", "ClusterRoleBinding"} <= kinds and "Role" not in kinds
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and "--standalone" in args
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert any("clusterkopfpeerings" in r["resources"] for r in role["rules"])


def test_template_sets_the_quality_poll_interval(k8s_cluster):
    def env(*args: str) -> dict[str, str]:
        dep = next(d for d in _template(k8s_cluster, *args) if d["kind"] == "Deployment")
        return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env()["LSML_OPERATOR_QUALITY_SECONDS"] == "30"
    assert env("--set", "operator.qualitySeconds=0")["LSML_OPERATOR_QUALITY_SECONDS"] == "0"


def _rules_grant(role: dict, resource: str) -> set[str]:
    return {v for r in role["rules"] if resource in r["resources"] for v in r["verbs"]}


def test_template_clusterwide_secrets_default_everywhere_or_only_in_listed_namespaces(k8s_cluster):
    docs = _template(k8s_cluster, "-f", str(CHART / "ci/clusterwide-values.yaml"))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert _rules_grant(role, "secrets") == {"get", "create"}  # the documented cluster-wide case
    docs = _template(
        k8s_cluster, "-f", str(CHART / "ci/clusterwide-values.yaml"), "--set", "rbac.secretNamespaces={team-a,team-b}"
    )
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert _rules_grant(role, "secrets") == set()
    assert _rules_grant(role, "deployments") >= {"patch", "watch"}
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(_rules_grant(r, "secrets") == {"get", "create"} and len(r["rules"]) == 1 for r in roles)
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert all(b["roleRef"]["name"] == roles[0]["metadata"]["name"] for b in bindings)


def test_template_secret_guard_policy(k8s_cluster):
    docs = _template(k8s_cluster)
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] and binding["spec"]["validationActions"] == [
        "Deny"
    ]
    assert f"system:serviceaccount:{SYSTEM_NS}:lsml-operator" in policy["spec"]["matchConditions"][0]["expression"]
    docs = _template(k8s_cluster, "--set", "rbac.secretGuard=false")
    assert "ValidatingAdmissionPolicy" not in {d["kind"] for d in docs}


def _secret_doc(name: str, secret_type: str = "Opaque", labelled: bool = True) -> str:
    meta = {"name": name, "namespace": WATCHED[0]}
    if labelled:
        meta["labels"] = {"app.kubernetes.io/managed-by": "lsml-operator"}
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret_type, "stringData": {"password": "x"}}
    if secret_type == "kubernetes.io/service-account-token":
        meta["annotations"] = {"kubernetes.io/service-account.name": "default"}
        del doc["stringData"]
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    "name,secret_type,labelled,allowed",
    [
        ("x-redis-auth", "Opaque", True, True),
        ("x-redis-auth", "kubernetes.io/service-account-token", True, False),
        ("anything-else", "Opaque", True, False),
        ("x-redis-auth", "Opaque", False, False),
    ],
)
def test_operator_may_create_only_its_redis_password_secrets(
    k8s_cluster, operator_release, name, secret_type, labelled, allowed
):
    """RBAC cannot narrow `create secrets` by name or type; the chart's ValidatingAdmissionPolicy does. Without it
    the operator could mint a service-account token Secret for any ServiceAccount and read it back."""

    def create() -> subprocess.CompletedProcess:
        return k8s_cluster.kubectl(
            "create", "--dry-run=server", "-f", "-", AS, input=_secret_doc(name, secret_type, labelled), check=False
        )

    if allowed:
        proc = create()
        assert proc.returncode == 0, proc.stderr
    else:
        # the API server loads a new policy asynchronously (a second or so after `helm install`)
        proc = wait_for(lambda: (p := create()).returncode != 0 and p, timeout=30, message="the policy denies")
        assert "may only create its own Opaque" in proc.stderr, proc.stdout + proc.stderr


def test_values_schema_rejects_bad_values(k8s_cluster):
    proc = k8s_cluster.helm(
        "template", "x", str(CHART), "--kube-version=1.36.0", "--set", "replicaCount=-1", check=False
    )
    assert proc.returncode != 0 and "replicaCount" in proc.stderr
    proc = k8s_cluster.helm("template", "x", str(CHART), "--kube-version=1.36.0", "--set", "unknownKey=1", check=False)
    assert proc.returncode != 0


def test_install_created_every_object(k8s_cluster, operator_release):
    for crd in ("mlbackends.lsml.dev", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        got = json.loads(k8s_cluster.kubectl("get", "crd", crd, "-o", "json").stdout)
        assert any(c["type"] == "Established" and c["status"] == "True" for c in got["status"]["conditions"])
    resources = k8s_cluster.kubectl("api-resources", "--api-group=lsml.dev").stdout
    assert "mlbackends" in resources and "mlb" in resources
    k8s_cluster.kubectl("get", "serviceaccount", SA, "-n", SYSTEM_NS)
    dep = json.loads(k8s_cluster.kubectl("get", "deployment", "lsml-operator", "-n", SYSTEM_NS, "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == SA
    for ns in WATCHED:
        k8s_cluster.kubectl("get", "role", "lsml-operator", "-n", ns)
        rb = json.loads(k8s_cluster.kubectl("get", "rolebinding", "lsml-operator", "-n", ns, "-o", "json").stdout)
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": SYSTEM_NS}]
        k8s_cluster.kubectl("get", "kopfpeering", "lsml-operator", "-n", ns)
    for ns in (UNWATCHED, SYSTEM_NS):
        assert k8s_cluster.kubectl("get", "role", "lsml-operator", "-n", ns, check=False).returncode != 0
    assert k8s_cluster.kubectl("get", "clusterrole", "lsml-operator", check=False).returncode != 0


ALLOWED = [
    ("get", "mlbackends.lsml.dev"),
    ("list", "mlbackends.lsml.dev"),
    ("watch", "mlbackends.lsml.dev"),
    ("patch", "mlbackends.lsml.dev"),
    ("patch", "mlbackends.lsml.dev/status"),
    ("update", "mlbackends.lsml.dev/finalizers"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("patch", "statefulsets.apps"),
    ("delete", "statefulsets.apps"),
    ("patch", "services"),
    ("patch", "persistentvolumeclaims"),
    ("delete", "persistentvolumeclaims"),
    ("patch", "horizontalpodautoscalers.autoscaling"),
    ("delete", "horizontalpodautoscalers.autoscaling"),
    ("get", "secrets"),
    ("create", "secrets"),
    ("get", "configmaps"),
    ("create", "events"),
    # status names why a component is unavailable: the MLBackend's pods and claims (pod_diagnosis)
    ("list", "pods"),
    ("list", "persistentvolumeclaims"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("patch", "networkpolicies.networking.k8s.io"),
    ("delete", "networkpolicies.networking.k8s.io"),
    ("watch", "networkpolicies.networking.k8s.io"),
    ("get", "kopfpeerings.kopf.dev"),
    ("patch", "kopfpeerings.kopf.dev"),
    ("watch", "kopfpeerings.kopf.dev"),
]
DENIED_IN_WATCHED = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("update", "secrets"),
    ("patch", "secrets"),
    ("delete", "secrets"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("update", "configmaps"),
    ("watch", "pods"),
    ("get", "pods/log"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("delete", "mlbackends.lsml.dev"),
    ("create", "serviceaccounts/token"),
    ("create", "jobs.batch"),
    # only with monitoring.perMLBackend (tests/operator/test_service_monitor.py turns it on)
    ("create", "servicemonitors.monitoring.coreos.com"),
]


@pytest.mark.parametrize("verb,resource", ALLOWED)
def test_operator_service_account_can(k8s_cluster, operator_release, verb, resource):
    for ns in WATCHED:
        proc = k8s_cluster.kubectl("auth", "can-i", verb, resource, "-n", ns, AS, check=False)
        assert proc.stdout.strip() == "yes", f"{SA} cannot {verb} {resource} in {ns}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("verb,resource", DENIED_IN_WATCHED)
def test_operator_service_account_cannot_more_than_it_needs(k8s_cluster, operator_release, verb, resource):
    proc = k8s_cluster.kubectl("auth", "can-i", verb, resource, "-n", WATCHED[0], AS, check=False)
    assert proc.stdout.strip() == "no", f"{SA} may {verb} {resource}: least privilege broken"


@pytest.mark.parametrize(
    "verb,resource",
    [("get", "secrets"), ("create", "secrets"), ("patch", "deployments.apps"), ("list", "mlbackends.lsml.dev")],
)
def test_operator_service_account_has_nothing_outside_watched_namespaces(k8s_cluster, operator_release, verb, resource):
    for ns in (UNWATCHED, "default", "kube-system"):
        proc = k8s_cluster.kubectl("auth", "can-i", verb, resource, "-n", ns, AS, check=False)
        assert proc.stdout.strip() == "no", f"{SA} may {verb} {resource} in {ns}"
    proc = k8s_cluster.kubectl("auth", "can-i", "list", "mlbackends.lsml.dev", "--all-namespaces", AS, check=False)
    assert proc.stdout.strip() == "no"


def test_clusterwide_install_can_confine_secrets_to_listed_namespaces(k8s_cluster, operator_release):
    """Cluster-wide mode with rbac.secretNamespaces: everything else cluster-wide, Secrets only where listed."""
    release, sa = "lsml-cw", "lsml-cw"
    k8s_cluster.helm(
        "upgrade",
        "--install",
        release,
        str(CHART),
        "--namespace",
        SYSTEM_NS,
        "--wait=false",
        "--set",
        "replicaCount=0",
        "--set",
        "peering.enabled=false",
        "--set",
        f"serviceAccount.name={sa}",
        "--set",
        "rbac.secretGuard=false",
        "--set",
        "rbac.secretNamespaces={" + WATCHED[0] + "}",
        timeout=180,
    )
    try:
        as_cw = f"--as=system:serviceaccount:{SYSTEM_NS}:{sa}"

        def can(verb: str, resource: str, ns: str) -> str:
            return k8s_cluster.kubectl("auth", "can-i", verb, resource, "-n", ns, as_cw, check=False).stdout.strip()

        assert can("get", "secrets", WATCHED[0]) == "yes" and can("create", "secrets", WATCHED[0]) == "yes"
        for ns in (WATCHED[1], UNWATCHED, "kube-system"):
            assert can("get", "secrets", ns) == "no", ns
            assert can("create", "secrets", ns) == "no", ns
            assert can("patch", "deployments.apps", ns) == "yes", ns  # the rest stays cluster-wide
    finally:
        k8s_cluster.helm("uninstall", release, "--namespace", SYSTEM_NS, check=False)
