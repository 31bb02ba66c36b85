#!/usr/bin/env python3
"""Operator benchmark: N MLBackends applied at once on the local control plane (kwok nodes).

Measures, for ``lsml-operator`` running as a local process (the image's entry point):
- seconds until every child the spec asks for exists (the operator's part), counted from the first and
  from the last create, and until every MLBackend reports Ready=True (the control plane's part too),
- the operator's peak RSS (VmHWM of the process) and CPU time,
- API requests at idle afterwards (per MLBackend per resync period), counted on the API server for the
  operator's identity only: the operator authenticates as its own ServiceAccount and FlowSchemas route
  exactly that identity's requests, one for its writes (create/update/patch/delete), one for its reads
  (get/list) and one for the rest (watches), so
  ``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` is the operator's request count
  (watches included), nobody else's, and ``apiserver_flowcontrol_request_execution_seconds`` the API
  server's time on them;
- a restart: the operator stopped and started again with every MLBackend present: its writes (none
  expected: nothing changed) and the seconds until its first pass (the resume of every MLBackend,
  ``lsml_operator_reconciles_total{trigger="resume"}`` on its metrics port) is over;
- one spec change under that load: seconds from the MLBackend's PATCH until its server Deployment
  carries the change, ``--spec-changes`` times.

    .venv/bin/python bench/operator.py --count 200 --idle-seconds 120
    .venv/bin/python bench/operator.py --spec full --count 1000 --nodes 32 --resync-seconds 60 --idle-seconds 120

``--spec full`` gives each MLBackend a server, a worker, a managed Redis and a model volume (7 children
and a Secret); ``minimal`` a server only. ``--probe`` runs the operator under ``bench/operator_probe.py``
(requests by verb and resource with their wall time, object counts, RSS; ``LSML_BENCH_TRACEMALLOC=<frames>``
adds the largest allocation sites) and ``--py-spy FILE`` samples it with py-spy during the ramp.
Results go to stdout as JSON and to bench/results/operator.json (``--out``).

``--ceiling`` first measures what the control plane itself takes: for each ``--ceiling-concurrency`` (a comma
list), a fresh control plane, the same MLBackends and no operator; a bare client writes the children the
operator would write for them (its own builders and ``Kube``, same field manager, same ServiceAccount), and
reports seconds from the first write to the last, writes per second and request latency (client side, and the
API server's for the write FlowSchema). The operator's run follows on its own fresh control plane and gets the
same figures (``ceiling_vs_operator``); ``--ceiling-only`` skips it (``bench/operator_ceiling.py``).

    .venv/bin/python bench/operator.py --spec full --count 1000 --nodes 32 --storage-workers 32 \
        --ceiling --ceiling-concurrency 16,64 --no-restart --idle-seconds 30

What else bounds "all Ready" on the harness is the harness itself: ``--storage static`` binds the claims to
PersistentVolumes made before the MLBackends (the scheduler binds them) instead of local-path-provisioner's helper
pods (~1 claim/s), and ``--controller-qps N`` raises the client rate limit of kube-controller-manager's controllers
and kube-scheduler from upstream's 20 and 50 requests/s (3,000 pods, 2,000 ReplicaSets and 2,000 claims at 20/s
take minutes). ``bound_volumes`` in the result says where the claims went.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import REPO, kubectl, load_controlplane, loadavg  # noqa: E402  (beside this script)
from operator_ceiling import (  # noqa: E402  (beside this script)
    apply_all,
    created_at,
    creation_span,
    creation_times,
    operator_kube,
    server_latency,
    summarize,
)

NS = "bench"
SA = "lsml-operator-bench"
FLOW = "lsml-operator-bench"
# one FlowSchema per kind of request, all matching only the operator's ServiceAccount (the lowest precedence
# number wins): writes, reads, and the rest (watches)
FLOWS = {"write": (f"{FLOW}-write", 98), "read": (f"{FLOW}-read", 99), "other": (FLOW, 100)}
VERBS = {"write": ["create", "update", "patch", "delete", "deletecollection"], "read": ["get", "list"], "other": ["*"]}
CHILD_PLURALS = {
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "Service": ("v1", "services"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
}


def flow_schema(name: str, precedence: int, verbs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "matchingPrecedence": precedence,
            "priorityLevelConfiguration": {"name": "workload-high"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": SA, "namespace": NS}}],
                    "resourceRules": [
                        {
                            "verbs": verbs,
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                    **({"nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]} if verbs == ["*"] else {}),
                }
            ],
        },
    }


def setup_identity(cp, workdir: Path) -> Path:
    """ServiceAccount + cluster-admin binding + FlowSchemas matching only it; returns its kubeconfig."""
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
        *(flow_schema(name, prec, VERBS[k]) for k, (name, prec) in FLOWS.items()),
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


def metrics_text(cp) -> str:
    """The API server's /metrics, read once for both the request counts and the latency histograms."""
    return kubectl(cp, "get", "--raw", "/metrics")


def flow_metrics(cp, text: str | None = None) -> dict[str, float]:
    """The operator's dispatched requests so far by kind (write/read/other) and the API server's seconds on them."""
    text = metrics_text(cp) if text is None else text
    out = {f"{k}_{m}": 0.0 for k in FLOWS for m in ("requests", "server_seconds")}
    for line in text.splitlines():
        for kind, (name, _) in FLOWS.items():
            if f'flow_schema="{name}"' not in line:
                continue
            if line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
                out[f"{kind}_requests"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("apiserver_flowcontrol_request_execution_seconds_sum{"):
                out[f"{kind}_server_seconds"] += float(line.rsplit(" ", 1)[1])
    out["requests"] = sum(out[f"{k}_requests"] for k in FLOWS)
    return out


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 1) for k in after}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of the operator process: its cost, independent of how busy the machine is."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mlbackend(i: int, spec: str) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "lsml.dev/v1alpha1",
        "kind": "MLBackend",
        "metadata": {"name": f"bench-{i:04d}", "namespace": NS},
        "spec": {
            "image": "lsml/runtime:latest",
            "server": {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
        },
    }
    if spec == "full":
        body["spec"].update(
            {
                "worker": {"enabled": True, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
                "redis": {"managed": True},
                "storage": {"size": "1Gi"},
            }
        )
    return body


def expected_children(spec: str) -> dict[str, int]:
    """Children of each kind one MLBackend of this spec has (from the operator's own builders)."""
    from lsml_operator.builders import desired_children

    sample = mlbackend(0, spec)
    sample["metadata"]["uid"] = "0"
    counts: dict[str, int] = {}
    for child in desired_children(sample):
        counts[child["kind"]] = counts.get(child["kind"], 0) + 1
    return counts


def count_objects(api, kind: str) -> int:
    """Objects of a kind in the namespace, from one LIST of one item (``remainingItemCount``): cheap at 1,000."""
    api_version, plural = CHILD_PLURALS[kind]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    resp = api.call_api(
        *api.param_serialize(
            method="GET",
            resource_path=f"{base}/namespaces/{NS}/{plural}",
            query_params=[("limit", 1)],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
    )
    resp.read()
    got = json.loads(resp.data)
    return len(got.get("items") or []) + int((got.get("metadata") or {}).get("remainingItemCount") or 0)


def create_mlbackends(custom, count: int, spec: str) -> tuple[list[dict[str, Any]], float]:
    """Create every MLBackend at once (8 threads); the created bodies (with their uids, for the children's owner
    references) and the seconds it took."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        created = list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    "lsml.dev", "v1alpha1", NS, "mlbackends", mlbackend(i, spec)
                ),
                range(count),
            )
        )
    return created, time.monotonic() - t0


def claims_per_mlbackend(spec: str) -> int:
    """Volumes one MLBackend of this spec claims: its model claim and one per managed Redis (its StatefulSet's one
    replica, from a claim template)."""
    counts = expected_children(spec)
    return counts.get("PersistentVolumeClaim", 0) + counts.get("StatefulSet", 0)


#: the label of the volumes ``--storage static`` makes, which ``volume_origins`` counts by
STATIC_VOLUME_LABEL = ("lsml.dev/bench", "static")


def static_volume(i: int, storage_class: str) -> dict[str, Any]:
    """A PersistentVolume of the harness' default StorageClass, ready to bind: what a cluster with provisioned-ahead
    storage has. kwok's pods never mount it, so the path is never made."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"bench-pv-{i:05d}", "labels": dict([STATIC_VOLUME_LABEL])},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "hostPath": {"path": f"/nonexistent/lsml-bench-pv/{i:05d}"},
        },
    }


def create_static_volumes(api, count: int, storage_class: str) -> float:
    """``--storage static``: ``count`` PersistentVolumes before the MLBackends exist; the seconds it took (not part of
    any measured window). The scheduler binds each claim to one when it places the claim's first pod, as it binds
    any pre-provisioned volume of a WaitForFirstConsumer class: no provisioner, no helper pod."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: core.create_persistent_volume(static_volume(i, storage_class)), range(count)))
    return time.monotonic() - t0


def prepare_storage(cpmod, api, args: argparse.Namespace) -> float:
    """``--storage static``: a volume for every claim the run will make (the MLBackends' and their Redis'), and a few
    spare; the seconds it took."""
    count = args.count * claims_per_mlbackend(args.spec)
    return create_static_volumes(api, count + max(8, count // 50), cpmod.STORAGE_CLASS)


def volume_origins(api) -> dict[str, int]:
    """Bound PersistentVolumes by origin, after the run: made ahead (``--storage static``) or by the provisioner. A
    static run whose claims went to the provisioner would measure the provisioner again."""
    from kubernetes import client

    bound = [v for v in client.CoreV1Api(api).list_persistent_volume().items if v.status.phase == "Bound"]
    key, value = STATIC_VOLUME_LABEL
    static = sum(1 for v in bound if (v.metadata.labels or {}).get(key) == value)
    return {"static": static, "provisioned": len(bound) - static}


def admin_client(cp, pool: int = 16) -> Any:
    """The bench's own client (cluster admin): its requests are not in the operator's FlowSchemas."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    api.configuration.connection_pool_maxsize = pool
    return api


def ceiling_pass(cpmod, bin_dir: Path, args: argparse.Namespace, workdir: Path, concurrency: int) -> dict[str, Any]:
    """The control plane's ceiling at one concurrency: a fresh control plane, the same MLBackends, no operator, and
    a bare client applying the children the operator would (``operator_ceiling``).

    A fresh control plane for each pass, and before the operator's run: the children of a pass bring
    ReplicaSets, pods and claims that the controllers, kwok and the provisioner keep working on, and they
    must not weigh on the next measurement; each pass has that background work of its own, as the
    operator's run does."""
    from kubernetes import client

    cp = cpmod.ControlPlane(
        bin_dir=bin_dir, nodes=args.nodes, storage_workers=args.storage_workers, client_qps=args.controller_qps
    )
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "owner_reads": args.ceiling_reads,
        "load_average_at_start": loadavg(),
    }
    try:
        cp.start()
        kubeconfig = setup_identity(cp, workdir)
        api = admin_client(cp)
        if args.storage == "static":
            out["static_volumes_seconds"] = round(prepare_storage(cpmod, api, args), 1)
        mlbs, created_s = create_mlbackends(client.CustomObjectsApi(api), args.count, args.spec)
        kube = operator_kube(kubeconfig, concurrency)
        before = metrics_text(cp)
        requests = apply_all(kube, mlbs, concurrency, owner_reads=args.ceiling_reads)
        after = metrics_text(cp)
        out.update(
            {
                "create_seconds": round(created_s, 1),
                **summarize(requests),
                "write_latency_server": server_latency(after, before, FLOWS["write"][0]),
                "requests_counted_by_api_server": delta(flow_metrics(cp, after), flow_metrics(cp, before)),
                "children_created": creation_span(creation_times(api, NS, CHILD_PLURALS), created_at(mlbs)),
                "load_average_at_end": loadavg(),
            }
        )
        print(f"ceiling at concurrency {concurrency}: {json.dumps(out)}", file=sys.stderr)
        return out
    finally:
        cp.stop(remove=True)


def comparison(result: dict[str, Any]) -> dict[str, Any]:
    """The operator's figures beside each ceiling pass's, from the same invocation (same machine, same hour)."""
    op = {
        "seconds_until_children_applied_after_last_create": result.get(
            "all_children_applied_after_last_create_seconds"
        ),
        "seconds_first_to_last_child_created": (result.get("children_created") or {}).get(
            "first_to_last_child_created_seconds"
        ),
        "writes_per_second": result.get("operator_writes_per_second_until_children_applied"),
        "write_latency_server": result.get("operator_write_latency_server_until_children_applied"),
    }
    ceilings = [
        {
            "concurrency": c["concurrency"],
            "seconds_first_to_last_write": c.get("first_to_last_write_seconds"),
            "seconds_first_to_last_child_created": (c.get("children_created") or {}).get(
                "first_to_last_child_created_seconds"
            ),
            "writes_per_second": c.get("writes_per_second"),
            "write_latency_server": c.get("write_latency_server"),
            "operator_writes_per_second_over_ceiling": round(op["writes_per_second"] / c["writes_per_second"], 2)
            if op["writes_per_second"] and c.get("writes_per_second")
            else None,
        }
        for c in result.get("ceiling") or []
    ]
    return {"operator": op, "ceiling": ceilings}


def count_ready(custom) -> tuple[int, int]:
    items = custom.list_namespaced_custom_object("lsml.dev", "v1alpha1", NS, "mlbackends")["items"]
    ready = sum(
        1
        for m in items
        for c in (m.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )
    return ready, len(items)


class Operator:
    """One ``lsml-operator`` process (optionally under the probe), its log, metrics port and liveness."""

    def __init__(self, cpmod, kubeconfig: Path, workdir: Path, probe: bool, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = cpmod.free_port()
        self.metrics_port = cpmod.free_port()
        self.probe = probe
        exe = str(Path(sys.executable).parent / "lsml-operator")
        argv = [sys.executable, str(REPO / "bench" / "operator_probe.py")] if probe else [exe]
        self.log_path = workdir / f"operator-{int(time.time())}.log"
        self.proc = subprocess.Popen(
            [
                *argv,
                f"--namespace={NS}",
                "--standalone",
                f"--liveness=http://127.0.0.1:{self.port}/healthz",
                f"--metrics-port={self.metrics_port}",
            ],
            env={**os.environ, **env, "KUBECONFIG": str(kubeconfig), "LSML_BENCH_PROBE_DIR": str(workdir)},
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"operator did not start; log:\n{self.log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)

    def reconciles(self, trigger: str) -> float:
        """``lsml_operator_reconciles_total{trigger=..., result="ok"}`` from its metrics endpoint."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        want = f'trigger="{trigger}"'
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("lsml_operator_reconciles_total{") and want in line and 'result="ok"' in line
        )

    def snapshot(self, label: str) -> None:
        """Ask the probe for a snapshot (a line of probe.jsonl); nothing without --probe."""
        if self.probe:
            probes = self.workdir / "probe.jsonl"
            before = probes.read_text().count("\n") if probes.exists() else 0
            (self.workdir / "label").write_text(label)
            os.kill(self.pid, signal.SIGUSR1)
            # the line comes when the snapshot is done: seconds, or minutes with tracemalloc at a thousand objects
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if probes.exists() and probes.read_text().count("\n") > before:
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the operator exited ({self.proc.returncode}) before its snapshot {label!r}")
                time.sleep(0.5)
            raise RuntimeError(f"the probe wrote no snapshot {label!r} within 600 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()


def spec_change_seconds(custom, apps, i: int, replicas: int, timeout: float = 30) -> float | None:
    """PATCH one MLBackend's server replicas; seconds until its server Deployment says so (polled every 20 ms)."""
    name = f"bench-{i:04d}"
    t0 = time.monotonic()
    custom.patch_namespaced_custom_object(
        "lsml.dev", "v1alpha1", NS, "mlbackends", name, {"spec": {"server": {"replicas": replicas}}}
    )
    while time.monotonic() - t0 < timeout:
        dep = apps.read_namespaced_deployment(f"{name}-server", NS)
        if dep.spec.replicas == replicas:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def concurrencies(text: str) -> list[int]:
    """``--ceiling-concurrency 16,64`` -> [16, 64]."""
    return [int(x) for x in text.split(",") if x.strip()]


def write_result(result: dict[str, Any], out: str) -> int:
    """Print the result (without the probe's snapshots) and write it whole to ``out``."""
    result["load_average_at_end"] = loadavg()
    print(json.dumps({k: v for k, v in result.items() if k != "probe"}, indent=2))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--spec", choices=["minimal", "full"], default="minimal")
    ap.add_argument("--nodes", type=int, default=4, help="kwok nodes (110 pods each)")
    ap.add_argument(
        "--storage-workers",
        type=int,
        default=4,
        help="local-path-provisioner worker threads (claims bound at once; its default is 4)",
    )
    ap.add_argument(
        "--storage",
        choices=["local-path", "static"],
        default="local-path",
        help="how claims bind: local-path-provisioner (a kwok helper pod per claim, ~1 claim/s) or PersistentVolumes "
        "created before the MLBackends (the scheduler binds them: the control plane's own pace)",
    )
    ap.add_argument(
        "--controller-qps",
        type=float,
        default=None,
        help="the controllers' and the scheduler's client QPS (burst twice it); default: upstream's, 20 per controller "
        "and 50 for the scheduler, which alone take minutes to roll out 1,000 MLBackends' pods and claims",
    )
    ap.add_argument("--idle-seconds", type=float, default=120)
    ap.add_argument("--ready-timeout", type=float, default=300)
    ap.add_argument("--resync-seconds", type=float, default=None, help="LSML_OPERATOR_RESYNC_SECONDS of the operator")
    ap.add_argument("--restart-timeout", type=float, default=300)
    ap.add_argument("--spec-changes", type=int, default=5, help="one-MLBackend spec changes timed after the restart")
    ap.add_argument("--no-restart", action="store_true", help="skip the restart and spec-change measurements")
    ap.add_argument("--probe", action="store_true", help="run the operator under bench/operator_probe.py")
    ap.add_argument("--py-spy", default=None, help="sample the operator with py-spy during the ramp into this file")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="first, on a fresh control plane and without the operator, apply the same children with a bare client",
    )
    ap.add_argument(
        "--ceiling-concurrency",
        type=concurrencies,
        default=[16],
        help="MLBackends the bare client writes at once, a comma list for one pass each (16: kopf's workers)",
    )
    ap.add_argument(
        "--ceiling-reads",
        action="store_true",
        help="the bare client also makes the operator's GET before each first write",
    )
    ap.add_argument("--ceiling-only", action="store_true", help="the ceiling passes only: no operator run")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "operator.json"))
    args = ap.parse_args()
    args.ceiling = args.ceiling or args.ceiling_only

    load_at_start = loadavg()  # the machine is shared: report how busy it was
    cpmod = load_controlplane()
    bin_dir = cpmod.find_bin_dir()
    cpmod.REQUIRED_BINARIES = tuple(b for b in cpmod.REQUIRED_BINARIES if b != "helm")  # the bench needs no helm
    missing = cpmod.missing_binaries(bin_dir)
    if missing:
        raise SystemExit(f"control-plane binaries missing ({missing}): run hack/control-plane/build.sh")
    workdir = Path(tempfile.mkdtemp(prefix="lsml-bench-operator-"))
    env = {} if args.resync_seconds is None else {"LSML_OPERATOR_RESYNC_SECONDS": str(args.resync_seconds)}
    resync = args.resync_seconds or float(os.environ.get("LSML_OPERATOR_RESYNC_SECONDS") or 300)
    want = {k: n * args.count for k, n in expected_children(args.spec).items()}
    op: Operator | None = None
    spy = None
    result: dict[str, Any] = {
        "count": args.count,
        "spec": args.spec,
        "kwok_nodes": args.nodes,
        "storage": args.storage,
        "controller_qps": args.controller_qps,
        "resync_seconds": resync,
    }
    if args.ceiling:
        result["ceiling"] = [ceiling_pass(cpmod, bin_dir, args, workdir, c) for c in args.ceiling_concurrency]
        if args.ceiling_only:
            return write_result(result, args.out)
        load_at_start = loadavg()
    cp = cpmod.ControlPlane(
        bin_dir=bin_dir, nodes=args.nodes, storage_workers=args.storage_workers, client_qps=args.controller_qps
    )
    try:
        cp.start()
        print(f"control plane up: {cp.api_url}; children expected: {want}", file=sys.stderr)
        kubeconfig = setup_identity(cp, workdir)
        op = Operator(cpmod, kubeconfig, workdir, args.probe, env)
        op.wait_up()
        print("operator up", file=sys.stderr)
        if args.py_spy:
            # non-blocking and at 25 Hz: blocking at 50 Hz fell behind on a slow machine and stopped the operator for
            # most of a minute of the ramp (bench/README.md); non-blocking samples may tear a stack, never stall it
            spy = subprocess.Popen(
                [
                    shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--rate",
                    "25",
                    "-o",
                    args.py_spy,
                    "--pid",
                    str(op.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        from kubernetes import client

        api = admin_client(cp)
        custom = client.CustomObjectsApi(api)
        apps = client.AppsV1Api(api)
        if args.storage == "static":
            result["static_volumes_seconds"] = round(prepare_storage(cpmod, api, args), 1)
        text0 = metrics_text(cp)
        m0 = flow_metrics(cp, text0)
        t0 = time.monotonic()
        mlbs, created_s = create_mlbackends(custom, args.count, args.spec)
        print(f"{args.count} MLBackends created in {created_s:.1f}s", file=sys.stderr)
        ready_s = applied_s = None
        text_applied = ""
        pending = dict(want)
        ready = 0
        while time.monotonic() - t0 < args.ready_timeout:
            for kind in list(pending):
                if count_objects(api, kind) >= pending[kind]:
                    del pending[kind]
            if applied_s is None and not pending:
                applied_s = time.monotonic() - t0  # the operator's part: every child exists
                text_applied = metrics_text(cp)
                print(f"every child applied after {applied_s:.1f}s", file=sys.stderr)
            ready, total = count_ready(custom)
            if ready == args.count:
                ready_s = time.monotonic() - t0
                break
            time.sleep(1)
        print(f"all Ready after {ready_s}s" if ready_s else f"NOT all Ready: {ready}/{args.count}", file=sys.stderr)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        m_ready = flow_metrics(cp)
        rss_after_ready = peak_rss_mb(op.pid)
        cpu_at_ready = cpu_seconds(op.pid)
        op.snapshot("ready")
        time.sleep(15)  # let the last status writes and watch events settle
        m1, t1 = flow_metrics(cp), time.monotonic()
        cpu_idle_start = cpu_seconds(op.pid)
        time.sleep(args.idle_seconds)
        m2, t2 = flow_metrics(cp), time.monotonic()
        idle = delta(m2, m1)
        periods = (t2 - t1) / resync
        op.snapshot("idle")
        # after the measurements: a LIST of every child's metadata is no small request at 1,000
        span = creation_span(creation_times(api, NS, CHILD_PLURALS), created_at(mlbs))
        result["bound_volumes"] = volume_origins(api)
        writes_applied = delta(flow_metrics(cp, text_applied), m0)["write_requests"] if applied_s else None
        result.update(
            {
                "load_average_at_start": load_at_start,
                "create_seconds": round(created_s, 1),
                "all_children_applied_seconds": round(applied_s, 1) if applied_s else None,
                "all_children_applied_after_last_create_seconds": round(applied_s - created_s, 1)
                if applied_s
                else None,
                "children_created": span,
                "operator_writes_until_children_applied": writes_applied,
                "operator_writes_per_second_until_children_applied": round(writes_applied / applied_s, 1)
                if applied_s
                else None,
                "operator_write_latency_server_until_children_applied": server_latency(
                    text_applied, text0, FLOWS["write"][0]
                )
                if applied_s
                else None,
                "all_ready_seconds": round(ready_s, 1) if ready_s else None,
                "ready_at_timeout": ready,
                "load_average_at_ready": loadavg(),
                "operator_peak_rss_mb_at_ready": round(rss_after_ready, 1),
                "operator_cpu_seconds_until_ready": round(cpu_at_ready, 1),
                "operator_requests_until_ready": delta(m_ready, m0),
                "idle_window_seconds": round(t2 - t1, 1),
                "idle_requests": idle,
                "idle_requests_per_minute": round(idle["requests"] / ((t2 - t1) / 60), 1),
                "idle_requests_per_mlbackend_per_resync": round(idle["requests"] / args.count / periods, 3),
                "operator_cpu_seconds_idle_window": round(cpu_seconds(op.pid) - cpu_idle_start, 1),
                "operator_rss_mb_idle": round(rss_mb(op.pid), 1),
                "operator_peak_rss_mb": round(peak_rss_mb(op.pid), 1),
            }
        )
        print(json.dumps(result, indent=2), file=sys.stderr)
        if not args.no_restart:
            first = op
            first.stop()
            op = None
            m3 = flow_metrics(cp)
            t3 = time.monotonic()
            op = Operator(cpmod, kubeconfig, workdir, args.probe, env)
            op.wait_up()
            resumed_s = None
            while time.monotonic() - t3 < args.restart_timeout:
                try:
                    if op.reconciles("resume") >= args.count:
                        resumed_s = time.monotonic() - t3
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            time.sleep(10)  # anything the first pass set off (events, status) has landed
            m4 = flow_metrics(cp)
            op.snapshot("restarted")
            changes = []
            for n in range(args.spec_changes):
                changes.append(spec_change_seconds(custom, apps, (n * 7919) % args.count, 2 + n % 2))
            result.update(
                {
                    "restart_first_pass_seconds": round(resumed_s, 1) if resumed_s else None,
                    "restart_requests": delta(m4, m3),
                    "restart_writes": delta(m4, m3)["write_requests"],
                    "restart_operator_cpu_seconds": round(cpu_seconds(op.pid), 1),
                    "restart_operator_peak_rss_mb": round(peak_rss_mb(op.pid), 1),
                    "spec_change_seconds": [round(c, 3) if c is not None else None for c in changes],
                    "spec_change_max_seconds": max((c for c in changes if c is not None), default=None),
                }
            )
        if args.probe:
            result["probe"] = [json.loads(line) for line in (workdir / "probe.jsonl").read_text().splitlines()]
        result["targets"] = {
            "all_children_applied_after_last_create_seconds": 30,
            "all_ready_seconds": 120,
            "operator_peak_rss_mb": 200,
            "idle_requests_per_mlbackend_per_resync": 1,
            "restart_writes": 0,
            "restart_first_pass_seconds": 60,
            "spec_change_max_seconds": 2,
        }
        if args.ceiling:
            result["ceiling_vs_operator"] = comparison(result)
        return write_result(result, args.out)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        if op is not None:
            op.stop()
        cp.stop(remove=True)
        print(f"operator logs and probe output in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
