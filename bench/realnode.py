#!/usr/bin/env python3
"""Real-pod benchmark: lsml's images on the harness's real node, the operator in-cluster.

Measures, on ``hack/control-plane`` with ``--real-node`` (kubelet + containerd running the
images ``hack/images/build`` makes):
- seconds from ``kubectl apply`` of an MLBackend (2 server replicas, worker, managed Redis,
  model volume; the ``text_classifier`` image) to ``Ready=True``, ``--runs`` times (p50, max;
  the MLBackend is deleted and its pods gone between runs),
- failed ``/predict`` requests through the Service while one server pod is deleted, and while
  a spec change rolls the server Deployment (4 threads, a fresh connection per request),
- the one-time costs: cluster start-up (images already built) and image build time when cold.

    .venv/bin/python bench/realnode.py --runs 5

Results go to stdout as JSON and to bench/results/realnode.json. Needs root (the real node).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

from harness import REPO, kubectl, load_controlplane  # noqa: E402  (beside this script)

NS = "bench-real"
NAME = "bench"
AUTH = ("bench", "pw-" + secrets.token_hex(8))
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)


def helm(cp, *args: str) -> None:
    import subprocess

    proc = subprocess.run(
        [str(Path(cp.bin_dir) / "helm"), f"--kubeconfig={cp.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "HELM_CACHE_HOME": str(cp.dir / "helm"),
            "HELM_CONFIG_HOME": str(cp.dir / "helm"),
            "HELM_DATA_HOME": str(cp.dir / "helm"),
            "HOME": str(cp.dir),
            "PATH": "/usr/bin:/bin",
        },
    )
    if proc.returncode != 0:
        raise SystemExit(f"helm {' '.join(args)} failed: {proc.stderr}")


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def mlb_body(images: dict[str, str], env_value: str = "0") -> dict:
    mlb = next(
        d
        for d in yaml.safe_load_all((REPO / "examples" / "mlbackend.yaml").read_text())
        if d and d.get("kind") == "MLBackend"
    )
    mlb["metadata"] = {"name": NAME, "namespace": NS}
    spec = mlb["spec"]
    spec.pop("labelStudio", None)
    spec["image"] = images["text_classifier"]
    spec["server"]["replicas"] = 2
    spec["server"]["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    spec["redis"]["image"] = images["redis"]
    spec["storage"] = {"size": "1Gi"}
    spec["model"]["env"] = [{"name": "BENCH_ROLL", "value": env_value}]
    return mlb


def is_ready(cp) -> bool:
    out = kubectl(cp, "get", "mlb", NAME, "-n", NS, "-o", "json", check=False)
    if not out:
        return False
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def server_pods(cp) -> list[dict]:
    out = kubectl(
        cp,
        "get",
        "pods",
        "-n",
        NS,
        "-o",
        "json",
        "-l",
        f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=server",
    )
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def load(url: str, seconds_after, threads: int = 4):
    """Run /predict in `threads` threads until seconds_after() says stop; returns (requests, failures)."""
    stop, results = threading.Event(), []
    body = {"tasks": [{"id": 1, "data": {"text": "a lovely film"}}], "project": "1.0", "label_config": CONFIG}

    def run():
        while not stop.is_set() and len(results) < 100_000:
            try:
                ok = requests.post(
                    f"{url}/predict", json=body, timeout=10, auth=AUTH, headers={"Connection": "close"}
                ).ok
            except requests.RequestException:
                ok = False
            results.append(ok)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    time.sleep(2)
    seconds_after()
    stop.set()
    for w in workers:
        w.join(20)
    return len(results), results.count(False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the cleanup in `finally`, also when stopped
    cp_mod = load_controlplane()
    directory = Path(tempfile.mkdtemp(prefix="lsml-bench-rn-", dir="/tmp"))
    t0 = time.monotonic()
    cp = cp_mod.ControlPlane(
        bin_dir=cp_mod.find_bin_dir(), dir=directory, nodes=1, real_node=True, startup_timeout=300
    ).start()
    out: dict = {"cluster_start_seconds": round(time.monotonic() - t0, 1)}
    try:
        images = cp.node.images
        repo, tag = images["operator"].rsplit(":", 1)
        helm(
            cp,
            "upgrade",
            "--install",
            "lsml-operator",
            str(REPO / "charts" / "lsml-operator"),
            "-n",
            "lsml-system",
            "--create-namespace",
            "--set",
            f"image.repository={repo}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=Never",
            "--wait",
            "--timeout=300s",
        )
        kubectl(cp, "create", "namespace", NS)
        # the example's basicAuth (the recommended setting) names this Secret
        auth_secret = mlb_body(images)["spec"]["basicAuth"]["secretName"]
        kubectl(
            cp,
            "create",
            "secret",
            "generic",
            auth_secret,
            "-n",
            NS,
            f"--from-literal=username={AUTH[0]}",
            f"--from-literal=password={AUTH[1]}",
        )
        ready_times = []
        for run in range(args.runs):
            began = time.monotonic()
            kubectl(cp, "apply", "-f", "-", input=json.dumps(mlb_body(images)))
            wait(lambda: is_ready(cp), 600, "Ready")
            ready_times.append(round(time.monotonic() - began, 1))
            print(f"run {run + 1}: Ready after {ready_times[-1]} s", file=sys.stderr)
            if run < args.runs - 1:
                kubectl(cp, "delete", "mlb", NAME, "-n", NS, "--wait=true", "--timeout=300s")
                wait(lambda: not kubectl(cp, "get", "pods", "-n", NS, "-o", "name"), 300, "pods gone")
        out["apply_to_ready_seconds"] = ready_times
        out["apply_to_ready_p50"] = statistics.median(ready_times)
        ip = json.loads(kubectl(cp, "get", "service", NAME, "-n", NS, "-o", "json"))["spec"]["clusterIP"]
        url = f"http://{ip}:9090"

        def delete_one():
            victim = server_pods(cp)[0]["metadata"]["name"]
            kubectl(cp, "delete", "pod", victim, "-n", NS, "--wait=false")
            wait(
                lambda: (
                    victim not in {p["metadata"]["name"] for p in server_pods(cp)}
                    and len(server_pods(cp)) == 2
                    and is_ready(cp)
                ),
                300,
                "replacement pod",
            )
            time.sleep(3)

        out["pod_delete_requests"], out["pod_delete_failed"] = load(url, delete_one)

        def roll():
            before = {p["metadata"]["name"] for p in server_pods(cp)}
            kubectl(cp, "apply", "-f", "-", input=json.dumps(mlb_body(images, env_value=str(time.time()))))
            wait(
                lambda: (
                    not ({p["metadata"]["name"] for p in server_pods(cp)} & before)
                    and len(server_pods(cp)) == 2
                    and is_ready(cp)
                ),
                300,
                "rollout",
            )
            time.sleep(3)

        out["rollout_requests"], out["rollout_failed"] = load(url, roll)
    finally:
        cp.stop(remove=True)
    print(json.dumps(out, indent=2))
    (REPO / "bench" / "results" / "realnode.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
