"""`kubectl apply -f crds/` then `lsml-operator` on a cluster without kopf's peering: the operator must not
hang silently (kopf pauses every watch and logs nothing). It exits non-zero within seconds naming what to
install, and ``--standalone`` works without any peering.

A control plane of this module's own: the session's cluster has the chart (and so the peering CRDs)
installed, and deleting cluster-scoped CRDs under the other tests' operator is not an option.
"""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, local_cluster, wait_for
from tests.fixtures.mlbackend import CHART, REPO, example
from tests.fixtures.ports import free_port

from .cluster import VENV_BIN, OperatorProcess, apply_yaml, condition, get_mlb

pytestmark = pytest.mark.kubernetes
NS = "lsml-nopeer"
PEERING_CRDS = CHART / "crds" / "kopf-peering.yaml"
EXIT_BOUND = 30.0  # seconds: discovery + one GET, then exit; a hang is caught by the timeout


@pytest.fixture(scope="module")
def bare_cluster() -> Iterator[KubernetesCluster]:
    """A fresh control plane (1 kwok node) with only what `kubectl apply -f crds/` installs."""
    with local_cluster(nodes=1) as cluster:
        cluster.kubectl("apply", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd/mlbackends.lsml.dev", "--timeout=60s")
        cluster.kubectl("create", "namespace", NS)
        yield cluster


def _peering_crds(cluster: KubernetesCluster, present: bool) -> None:
    if present:
        cluster.kubectl("apply", "-f", str(PEERING_CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
        wait_for(
            lambda: "kopfpeerings" in cluster.kubectl("api-resources", "--api-group=kopf.dev").stdout,
            timeout=30,
            message="kopfpeerings served",
        )
    else:
        cluster.kubectl("delete", "-f", str(PEERING_CRDS), "--ignore-not-found", "--wait=true", "--timeout=60s")
        wait_for(
            lambda: "kopfpeerings" not in cluster.kubectl("api-resources", "--api-group=kopf.dev", check=False).stdout,
            timeout=30,
            message="kopfpeerings no longer served",
        )


def _run_operator(cluster: KubernetesCluster, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """lsml-operator in the foreground; a process still running after EXIT_BOUND is the silent hang."""
    argv = [
        str(VENV_BIN / "lsml-operator"),
        f"--namespace={NS}",
        f"--liveness=http://127.0.0.1:{free_port()}/healthz",
        "--peering-name=lsml-operator",
        *args,
    ]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv, env=cluster.env(), capture_output=True, text=True, timeout=EXIT_BOUND, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"lsml-operator still running after {EXIT_BOUND:.0f}s without peering, saying:\n{out}{err}")
    return proc, time.monotonic() - t0


def _reconciles(cluster: KubernetesCluster, operator: OperatorProcess, name: str) -> None:
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": name, "namespace": NS}
    apply_yaml(cluster, mlb, NS)
    try:
        wait_for(
            lambda: (c := condition(get_mlb(cluster, NS, name), "Ready")) and c["status"] == "True",
            timeout=90,
            message=f"{name} Ready; operator log:\n{operator.log_tail()}",
        )
    finally:
        cluster.kubectl("delete", "mlb", name, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)


def test_without_the_peering_crd_it_exits_naming_the_crd_to_install(bare_cluster):
    _peering_crds(bare_cluster, present=False)
    proc, took = _run_operator(bare_cluster)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert took < EXIT_BOUND
    assert "kopfpeerings.kopf.dev is not installed" in out, out
    assert "kubectl apply -f charts/lsml-operator/crds/kopf-peering.yaml" in out, out
    assert f"KopfPeering 'lsml-operator' in namespace(s) {NS}" in out and "--standalone" in out, out
    assert "Traceback" not in out, out


def test_standalone_works_without_any_peering(bare_cluster, tmp_path):
    _peering_crds(bare_cluster, present=False)
    op = OperatorProcess(bare_cluster.kubeconfig, tmp_path / "standalone.log", (NS,))
    op.start(extra_args=["--standalone"])
    try:
        _reconciles(bare_cluster, op, "nopeer-standalone")
    finally:
        op.stop()
    assert "kopfpeerings" not in op.log()


def test_without_the_peering_object_it_exits_naming_it_then_works_once_created(bare_cluster, tmp_path):
    _peering_crds(bare_cluster, present=True)
    bare_cluster.kubectl("delete", "kopfpeering", "lsml-operator", "-n", NS, "--ignore-not-found")
    proc, took = _run_operator(bare_cluster)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and took < EXIT_BOUND, out
    assert f"KopfPeering 'lsml-operator' does not exist in namespace(s) {NS}" in out, out
    assert "Traceback" not in out, out
    # with the object in place the same command line starts and reconciles (no false alarm)
    apply_yaml(
        bare_cluster,
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "lsml-operator", "namespace": NS}},
        NS,
    )
    op = OperatorProcess(bare_cluster.kubeconfig, tmp_path / "peered.log", (NS,))
    op.start()
    try:
        _reconciles(bare_cluster, op, "nopeer-peered")
    finally:
        op.stop()
