"""Cluster fixtures of the operator tests: the chart installed into the real control plane, the
operator running as a local process with the chart's ServiceAccount token, and a real lsml
runtime on 127.0.0.1 for Label Studio to validate.

Images cannot run here (kwok fakes pods), so the operator runs as ``lsml-operator`` (the
image's entry point) on this machine, authenticated as ``system:serviceaccount:lsml-system:
lsml-operator`` through a TokenRequest token: every API call it makes goes through the RBAC
the chart installed.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.mlbackend import CHART
from tests.fixtures.processes import running

from .cluster import RELEASE, SA, SYSTEM_NS, UNWATCHED, WATCHED, OperatorProcess, RuntimeServer


def _ensure_namespace(cluster: KubernetesCluster, name: str) -> None:
    if cluster.kubectl("get", "namespace", name, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", name)


@pytest.fixture(scope="session")
def operator_release(k8s_cluster: KubernetesCluster) -> dict[str, Any]:
    """The chart installed once per session, namespaced mode, watching WATCHED."""
    for ns in (SYSTEM_NS, *WATCHED, UNWATCHED):
        _ensure_namespace(k8s_cluster, ns)
    k8s_cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM_NS,
        "--wait=false",
        "--set",
        "watchNamespaces={" + ",".join(WATCHED) + "}",
        timeout=180,
    )
    wait_for(
        lambda: (
            k8s_cluster.kubectl(
                "get",
                "crd",
                "mlbackends.lsml.dev",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,
            ).stdout
            == "True"
        ),
        timeout=60,
        message="MLBackend CRD established",
    )
    return {"release": RELEASE, "namespace": SYSTEM_NS, "watched": WATCHED, "sa": SA}


@pytest.fixture(scope="session")
def sa_kubeconfig(k8s_cluster: KubernetesCluster, operator_release: dict[str, Any], tmp_path_factory) -> Path:
    """A kubeconfig for the chart's ServiceAccount (TokenRequest API, 2 h)."""
    from kubernetes import client

    api = k8s_cluster.api_client()
    core = client.CoreV1Api(api)
    wait_for(lambda: core.read_namespaced_service_account(SA, SYSTEM_NS), timeout=30, message="operator ServiceAccount")
    tr = core.create_namespaced_service_account_token(
        SA,
        SYSTEM_NS,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=7200)),
    )
    ca = api.configuration.ssl_ca_cert
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": k8s_cluster.api_url, "certificate-authority": ca}}],
                "users": [{"name": SA, "user": {"token": tr.status.token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": SA}}],
                "current-context": "c",
            }
        )
    )
    path.chmod(0o600)
    api.close()
    return path


@pytest.fixture(scope="session")
def operator(sa_kubeconfig: Path, tmp_path_factory) -> Iterator[OperatorProcess]:
    """One operator process for the session (tests that kill it start it again)."""
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    yield from running(OperatorProcess(sa_kubeconfig, log, WATCHED))


@pytest.fixture
def running_operator(operator: OperatorProcess) -> OperatorProcess:
    if not operator.running:
        operator.start()
    return operator


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran the operator shows the operator's last log lines in its report.

    A wait that timed out on a loaded CI machine says only what did not happen; why (a Label Studio
    call that timed out, a retry pending, a conflict) is in the operator's log, which is gone with the run.
    """
    report = yield
    process = getattr(item, "funcargs", {}).get("running_operator") or getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(process, OperatorProcess):
        report.sections.append(("operator log (last 80 lines)", process.log_tail(80)))
    return report


@pytest.fixture(scope="session")
def lsml_runtime(tmp_path_factory) -> Iterator[RuntimeServer]:
    yield from running(RuntimeServer(tmp_path_factory.mktemp("lsml-runtime")))
