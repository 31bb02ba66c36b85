#!/usr/bin/env python3
"""Operator benchmark: N MLBackends applied at once on the local control plane (kwok nodes).

Measures, for ``lsml-operator`` running as a local process (the image's entry point):
- seconds from the first create until every MLBackend reports Ready=True,
- the operator's peak RSS (VmHWM of the process),
- API requests per minute at idle afterwards, counted on the API server for the operator's
  identity only: the operator authenticates as its own ServiceAccount and a FlowSchema
  routes exactly that identity's requests, so
  ``apiserver_flowcontrol_dispatched_requests_total{flow_schema="lsml-operator-bench"}``
  is the operator's request count (watches included), nobody else's.

    .venv/bin/python bench/operator.py --count 200 --idle-seconds 120

Targets: all Ready within 60 s, peak RSS under 150 MB, no hot loop (idle requests per minute
far below one per object per minute). Results go to stdout as JSON and to
bench/results/operator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import REPO, kubectl, load_controlplane  # noqa: E402  (beside this script)

NS = "bench"
SA = "lsml-operator-bench"
FLOW = "lsml-operator-bench"


def setup_identity(cp, workdir: Path) -> Path:
    """ServiceAccount + cluster-admin binding + a FlowSchema matching only it; returns its kubeconfig."""
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": NS}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": SA},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": NS}],
        },
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": FLOW},
            "spec": {
                "matchingPrecedence": 100,
                "priorityLevelConfiguration": {"name": "workload-high"},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": SA, "namespace": NS}}],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        },
    ]
    kubectl(cp, "apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    kubectl(cp, "apply", "-f", str(REPO / "crds" / "mlbackend.yaml"))
    kubectl(cp, "wait", "--for=condition=Established", "crd/mlbackends.lsml.dev", "--timeout=60s")
    token = kubectl(cp, "create", "token", SA, "-n", NS, "--duration=4h").strip()
    admin = json.loads(Path(cp.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    path = workdir / "operator-kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": SA, "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": SA}}],
                "current-context": "c",
            }
        )
    )
    return path


def flow_requests(cp) -> float:
    """The operator's dispatched requests so far (all priority levels of its FlowSchema)."""
    text = kubectl(cp, "get", "--raw", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_flowcontrol_dispatched_requests_total{") and f'flow_schema="{FLOW}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of the operator process: its cost, independent of how busy the machine is."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mlbackend(i: int) -> dict:
    return {
        "apiVersion": "lsml.dev/v1alpha1",
        "kind": "MLBackend",
        "metadata": {"name": f"bench-{i:04d}", "namespace": NS},
        "spec": {
            "image": "lsml/runtime:latest",
            "server": {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
        },
    }


def count_ready(custom) -> tuple[int, int]:
    items = custom.list_namespaced_custom_object("lsml.dev", "v1alpha1", NS, "mlbackends")["items"]
    ready = sum(
        1
        for m in items
        for c in (m.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )
    return ready, len(items)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=4, help="kwok nodes (110 pods each)")
    ap.add_argument("--idle-seconds", type=float, default=120)
    ap.add_argument("--ready-timeout", type=float, default=300)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "operator.json"))
    args = ap.parse_args()

    load_at_start = os.getloadavg()[0]  # the machine is shared: report how busy it was
    cpmod = load_controlplane()
    bin_dir = cpmod.find_bin_dir()
    cpmod.REQUIRED_BINARIES = tuple(b for b in cpmod.REQUIRED_BINARIES if b != "helm")  # the bench needs no helm
    missing = cpmod.missing_binaries(bin_dir)
    if missing:
        raise SystemExit(f"control-plane binaries missing ({missing}): run hack/control-plane/build.sh")
    workdir = Path(tempfile.mkdtemp(prefix="lsml-bench-operator-"))
    cp = cpmod.ControlPlane(bin_dir=bin_dir, nodes=args.nodes)
    op = None
    try:
        cp.start()
        print(f"control plane up: {cp.api_url}", file=sys.stderr)
        kubeconfig = setup_identity(cp, workdir)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        log = open(workdir / "operator.log", "wb")
        port = cpmod.free_port()
        op = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "lsml-operator"),
                f"--namespace={NS}",
                "--standalone",
                f"--liveness=http://127.0.0.1:{port}/healthz",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or op.poll() is not None:
                    raise SystemExit(
                        f"operator did not start; log:\n{(workdir / 'operator.log').read_text()[-3000:]}"
                    ) from None
                time.sleep(0.2)
        print("operator up", file=sys.stderr)

        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        api.configuration.connection_pool_maxsize = 16
        custom = client.CustomObjectsApi(api)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: custom.create_namespaced_custom_object(
                        "lsml.dev", "v1alpha1", NS, "mlbackends", mlbackend(i)
                    ),
                    range(args.count),
                )
            )
        created_s = time.monotonic() - t0
        print(f"{args.count} MLBackends created in {created_s:.1f}s", file=sys.stderr)
        ready_s = None
        applied_s = None
        apps = client.AppsV1Api(api)
        while time.monotonic() - t0 < args.ready_timeout:
            if applied_s is None and len(apps.list_namespaced_deployment(NS).items) >= args.count:
                applied_s = time.monotonic() - t0  # the operator's part: every server Deployment exists
            ready, total = count_ready(custom)
            if ready == args.count:
                ready_s = time.monotonic() - t0
                break
            time.sleep(0.5)
        print(f"all Ready after {ready_s}s" if ready_s else f"NOT all Ready: {ready}/{total}", file=sys.stderr)
        rss_after_ready = peak_rss_mb(op.pid)
        cpu_at_ready = cpu_seconds(op.pid)
        time.sleep(15)  # let the last status writes and watch events settle
        c1, t1 = flow_requests(cp), time.monotonic()
        cpu_idle_start = cpu_seconds(op.pid)
        time.sleep(args.idle_seconds)
        c2, t2 = flow_requests(cp), time.monotonic()
        idle_rpm = (c2 - c1) / ((t2 - t1) / 60)
        result = {
            "count": args.count,
            "create_seconds": round(created_s, 1),
            "all_deployments_applied_seconds": round(applied_s, 1) if applied_s else None,
            "all_ready_seconds": round(ready_s, 1) if ready_s else None,
            "load_average_1m_at_start": load_at_start,
            "operator_peak_rss_mb": round(peak_rss_mb(op.pid), 1),
            "operator_peak_rss_mb_at_ready": round(rss_after_ready, 1),
            "operator_cpu_seconds_until_ready": round(cpu_at_ready, 1),
            "idle_requests_per_minute": round(idle_rpm, 1),
            "operator_cpu_seconds_idle_window": round(cpu_seconds(op.pid) - cpu_idle_start, 1),
            "idle_window_seconds": round(t2 - t1, 1),
            "total_operator_requests": int(c2),
            "kwok_nodes": args.nodes,
            "targets": {"all_ready_seconds": 60, "operator_peak_rss_mb": 150},
        }
        result["pass"] = bool(
            ready_s and ready_s <= 60 and result["operator_peak_rss_mb"] < 150 and idle_rpm < args.count
        )
        print(json.dumps(result, indent=2))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return 0 if result["pass"] else 1
    finally:
        if op is not None and op.poll() is None:
            os.killpg(op.pid, signal.SIGTERM)
            try:
                op.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(op.pid, signal.SIGKILL)
        cp.stop(remove=True)


if __name__ == "__main__":
    sys.exit(main())
