"""lsml as users run it, on real pods: `helm install`, `kubectl apply -f mlbackend.yaml`, Label Studio.

One MLBackend from ``examples/mlbackend.yaml`` (2 server replicas, an RQ worker, managed
Redis, a model volume, basic auth) runs lsml's own ``text_classifier`` image on the real
node, reconciled by the operator running in-cluster from its image. Label Studio reaches the
backend only through its Service. The tests run in file order on that one backend (module
fixture): ready, predictions, training in the worker pod, then the faults and the rollout
(the last fault swaps in an image whose fit is slow, `slow_fit_image`, and deletes the worker pod
mid-fit), then the delete.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.label_studio import SENTIMENT_CONFIG, SENTIMENT_TEXTS, sentiment_choice
from tests.fixtures.training_metrics import training_idle

from . import slow_fit_image
from .cluster import images, real_backend
from .cluster import kube_json as _json
from .cluster import mlb_condition as condition
from .cluster import pod_ready as ready

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode, pytest.mark.labelstudio]

NAME = "textcls"
NS = "lsml-real"
AUTH = ("labelstudio", "pw-" + secrets.token_hex(10))
TEXTS = SENTIMENT_TEXTS


def pods(cluster: KubernetesCluster, component: str) -> list[dict]:
    selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component={component}"
    items = _json(cluster, "get", "pods", "-n", NS, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def service_url(cluster: KubernetesCluster) -> str:
    ip = _json(cluster, "get", "service", NAME, "-n", NS)["spec"]["clusterIP"]
    return f"http://{ip}:9090"


def versions(pod_ip: str, project: int) -> dict:
    """One server pod's own `/versions` answer for the project (on its pod address, not the Service)."""
    response = requests.get(f"http://{pod_ip}:9090/versions", params={"project": str(project)}, auth=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def served_version(pod_ip: str, project: int) -> str:
    return versions(pod_ip, project)["model_version"]


def newest_number(report: dict) -> int:
    return max((v["number"] for v in report["details"]), default=0)


@dataclass
class LoadLoop:
    """Threads sending /predict through the Service, each on a fresh connection, bounded in count and time."""

    url: str
    project: int
    threads: int = 4
    max_seconds: float = 180.0
    max_requests: int = 50_000
    results: list[tuple[float, bool, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _body(self) -> dict:
        return {
            "tasks": [{"id": 1, "data": {"text": "a lovely film"}}],
            "project": f"{self.project}.0",
            "label_config": SENTIMENT_CONFIG,
            "params": {},
        }

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
            began = time.monotonic()
            try:
                response = requests.post(
                    f"{self.url}/predict", json=self._body(), auth=AUTH, timeout=10, headers={"Connection": "close"}
                )
                ok, what = response.status_code == 200, str(response.status_code)
            except requests.RequestException as exc:
                ok, what = False, type(exc).__name__
            self.results.append((began, ok, what))

    def __enter__(self) -> LoadLoop:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=20)

    @property
    def failures(self) -> list[tuple[float, bool, str]]:
        return [r for r in self.results if not r[1]]


@pytest.fixture(scope="module")
def backend(real_node_cluster: KubernetesCluster, operator_in_cluster: str, cluster_label_studio) -> Iterator[dict]:
    def two_servers(spec: dict) -> None:
        spec["server"]["replicas"] = 2

    with real_backend(
        real_node_cluster,
        cluster_label_studio,
        name=NAME,
        namespace=NS,
        auth=AUTH,
        image=images(real_node_cluster)["text_classifier"],
        texts=TEXTS,
        title="text classifier on real pods",
        customize=two_servers,
    ) as state:
        print(f"\nkubectl apply -> Ready=True on real pods: {state['ready_seconds']:.1f} s")
        yield state


def test_backend_is_ready_with_every_pod_running_and_probed_for_real(real_node_cluster, backend):
    cluster = real_node_cluster
    for component, count in (("server", 2), ("worker", 1), ("redis", 1)):
        found = pods(cluster, component)
        assert len(found) == count, (component, [p["metadata"]["name"] for p in found])
        for pod in found:
            assert ready(pod), pod["status"]
            assert pod["spec"]["nodeName"] == "lsml-node"
            assert pod["status"]["containerStatuses"][0]["imageID"]  # really started by containerd
    # Ready comes from real probes: gunicorn answers /readyz on the pod's own address.
    for pod in pods(cluster, "server"):
        probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        assert probe["path"] == "/readyz"
        assert requests.get(f"http://{pod['status']['podIP']}:9090/readyz", timeout=5).status_code == 200
    # The model volume is one RWO claim bound by the provisioner; server and worker pods share its node.
    claim = _json(cluster, "get", "pvc", f"{NAME}-models", "-n", NS)
    assert claim["status"]["phase"] == "Bound"
    body = backend["mlb"]
    for kind in ("ServerAvailable", "Ready"):
        assert condition(body, kind).get("status") == "True", body["status"]


def operator_logs(cluster: KubernetesCluster) -> str:
    out = []
    for pod in _json(cluster, "get", "pods", "-n", "lsml-system")["items"]:
        name = pod["metadata"]["name"]
        restarts = sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))
        log = cluster.kubectl("logs", name, "-n", "lsml-system", "--tail=60", check=False).stdout
        out.append(f"--- {name} (restarts {restarts})\n{log}")
    return "\n".join(out)


def test_label_studio_registers_the_service_and_stores_no_empty_prediction_while_untrained(
    real_node_cluster, cluster_label_studio, backend
):
    with cluster_label_studio.client() as client:
        found = client.ml_backends(backend["project"])
        if len(found) != 1:  # the operator converges (one URL, one backend); say how it got here
            print(
                f"\n{len(found)} ML backends registered: "
                f"{[(b['id'], b['url'], b['created_at']) for b in found]}\n{operator_logs(real_node_cluster)}"
            )
        found = wait_for(
            lambda: (lambda b: b if len(b) == 1 else None)(client.ml_backends(backend["project"])),
            90,
            interval=3.0,
            message="exactly one ML backend registered",
        )
        (registered,) = found
        assert registered["url"] == f"http://{NAME}.{NS}.svc:9090"  # the Service's name, resolved by cluster DNS
        assert registered["readable_state"] == "Connected"
        client.run_action(backend["project"], "retrieve_tasks_predictions")
        by_task: dict[int, list] = {}
        for prediction in client.predictions(project=backend["project"]):
            by_task.setdefault(prediction["task"], []).append(prediction)
    assert by_task == {}  # untrained: one [] per task, nothing stored (the trained round stores one each)
    backend["untrained_version"] = registered["model_version"]


def test_annotations_train_in_the_worker_pod_and_every_replica_serves_the_new_version(
    real_node_cluster, cluster_label_studio, backend
):
    cluster, project = real_node_cluster, backend["project"]
    with cluster_label_studio.client() as client:
        for text, label in TEXTS.items():
            if label:
                client.create_annotation(backend["tasks"][text], sentiment_choice(label))
    server_ips = [p["status"]["podIP"] for p in pods(cluster, "server")]

    def newest_everywhere() -> str | None:
        versions = {served_version(ip, project) for ip in server_ips}
        return versions.pop() if len(versions) == 1 and next(iter(versions)).startswith("v") else None

    wait_for(newest_everywhere, 180, interval=1.0, message="a trained version served by both server pods")
    # Label Studio without a Redis of its own (this one) sends webhooks inside the annotation's request
    # (core.redis.start_job_async_or_sync), so every trigger was queued before create_annotation returned;
    # once the queue has nothing waiting or running, the newest version is trained on all of them.
    wait_for(
        lambda: training_idle(f"http://{server_ips[0]}:9090", AUTH),
        180,
        interval=1.0,
        message="every queued training to end",
    )
    newest = wait_for(newest_everywhere, 60, interval=1.0, message="replicas agreeing on the newest version")
    (worker,) = pods(cluster, "worker")
    worker_log = cluster.kubectl("logs", worker["metadata"]["name"], "-n", NS).stdout
    assert "lsml-training" in worker_log  # the jobs ran in the worker pod, not in the servers

    with cluster_label_studio.client() as client:
        (registered,) = client.ml_backends(project)
        wait_for(
            lambda: client.ml_backend(registered["id"])["model_version"] == newest,
            90,
            interval=2.0,
            message=f"Label Studio to show model_version {newest}",
        )
        client.run_action(project, "retrieve_tasks_predictions")
        fresh = [p for p in client.predictions(project=project) if p["model_version"] == newest]
    assert sorted(p["task"] for p in fresh) == sorted(backend["tasks"].values())  # exactly one per task
    by_text = {text: next(p for p in fresh if p["task"] == tid) for text, tid in backend["tasks"].items()}
    for text, label in TEXTS.items():
        if label:
            assert by_text[text]["result"][0]["value"]["choices"] == [label]
    backend["trained_version"] = newest


def test_deleting_a_server_pod_under_load_fails_no_request(real_node_cluster, backend):
    cluster = real_node_cluster
    victim = pods(cluster, "server")[0]["metadata"]["name"]
    with LoadLoop(service_url(cluster), backend["project"]) as load:
        time.sleep(2)
        cluster.kubectl("delete", "pod", victim, "-n", NS, "--wait=false")
        wait_for(
            lambda: (
                len([p for p in pods(cluster, "server") if ready(p)]) == 2
                and victim not in {p["metadata"]["name"] for p in pods(cluster, "server")}
            ),
            180,
            interval=1.0,
            message="the server Deployment back to 2 ready pods",
        )
        time.sleep(3)
    print(
        f"\nserver pod deleted under load: {len(load.results)} requests, {len(load.failures)} failed "
        f"({sorted({f[2] for f in load.failures})})"
    )
    assert len(load.results) > 50
    # The pod drains (preStop) before gunicorn stops: fresh connections never meet a dead endpoint,
    # at most the requests in flight on it when it stopped could fail (one per load thread).
    assert len(load.failures) <= load.threads, load.failures


def test_a_spec_change_rolls_the_servers_with_no_failed_request(real_node_cluster, backend):
    cluster = real_node_cluster
    before = {p["metadata"]["name"] for p in pods(cluster, "server")}
    patch = {
        "spec": {
            "model": {
                "env": [{"name": "LOG_LEVEL", "value": "INFO"}, {"name": "E2E_ROLLOUT", "value": secrets.token_hex(4)}]
            }
        }
    }
    with LoadLoop(service_url(cluster), backend["project"]) as load:
        time.sleep(2)
        cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps(patch))
        wait_for(
            lambda: (lambda now: len(now) == 2 and not now & before and all(ready(p) for p in pods(cluster, "server")))(
                {p["metadata"]["name"] for p in pods(cluster, "server")}
            ),
            240,
            interval=1.0,
            message="the rollout to replace both server pods",
        )
        time.sleep(3)
    print(f"\nrolling update under load: {len(load.results)} requests, {len(load.failures)} failed")
    assert len(load.results) > 50
    assert load.failures == [], load.failures


def test_deleting_redis_with_a_job_queued_loses_no_training(real_node_cluster, cluster_label_studio, backend):
    cluster, project = real_node_cluster, backend["project"]
    server_ip = pods(cluster, "server")[0]["status"]["podIP"]
    before = newest_number(versions(server_ip, project))
    cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", '{"spec":{"worker":{"replicas":0}}}')
    wait_for(lambda: not pods(cluster, "worker"), 120, interval=1.0, message="no worker pod")
    with cluster_label_studio.client() as client:  # a trigger with nobody to take it: the job waits in Redis
        task = backend["tasks"]["an excellent and lovely story"]
        client.create_annotation(task, sentiment_choice("Positive"))
    redis_pod = f"{NAME}-redis-0"

    def queued() -> int:
        out = cluster.kubectl(
            "exec", redis_pod, "-n", NS, "--", "sh", "-c", "redis-cli -p 6379 llen rq:queue:lsml-training", check=False
        ).stdout.strip()
        return int(out) if out.isdigit() else 0

    wait_for(queued, 60, interval=1.0, message="the training job queued in Redis")

    # the AOF fsyncs every second; Redis 7.0 (the image's) has no WAITAOF. An AOF rewrite writes the whole
    # dataset, the queued job included, and fsyncs it before it counts as done: start one and wait for it.
    def persistence() -> dict[str, str]:
        out = cluster.kubectl("exec", redis_pod, "-n", NS, "--", "sh", "-c", "redis-cli -p 6379 info persistence")
        return dict(line.strip().split(":", 1) for line in out.stdout.splitlines() if ":" in line)

    rewrites = int(persistence()["aof_rewrites"])
    cluster.kubectl("exec", redis_pod, "-n", NS, "--", "sh", "-c", "redis-cli -p 6379 bgrewriteaof")
    synced = wait_for(
        lambda: (lambda p: p if int(p["aof_rewrites"]) > rewrites and p["aof_rewrite_in_progress"] == "0" else None)(
            persistence()
        ),
        60,
        interval=0.5,
        message="an AOF rewrite holding the queued job to end",
    )
    assert synced["aof_last_bgrewrite_status"] == "ok", synced
    uid = _json(cluster, "get", "pod", redis_pod, "-n", NS)["metadata"]["uid"]
    cluster.kubectl("delete", "pod", redis_pod, "-n", NS)
    wait_for(
        lambda: (lambda p: p["metadata"]["uid"] != uid and ready(p))(_json(cluster, "get", "pod", redis_pod, "-n", NS)),
        180,
        interval=1.0,
        message="a new Redis pod, ready",
    )
    assert queued() >= 1  # reloaded from the AOF on its volume
    cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", '{"spec":{"worker":{"replicas":1}}}')

    wait_for(
        lambda: newest_number(versions(server_ip, project)) > before,
        180,
        interval=1.0,
        message="the queued training to publish a version",
    )


def pod_log(cluster: KubernetesCluster, name: str) -> str:
    return cluster.kubectl("logs", name, "-n", NS, check=False).stdout


def test_deleting_the_worker_pod_mid_fit_loses_no_training(real_node_cluster, cluster_label_studio, backend):
    """The worker pod is deleted with a 1 s grace period while a long fit runs: RQ's warm shutdown cannot
    wait it out, the kubelet SIGKILLs worker and work horse, and the new worker pod trains the trigger."""
    cluster, project = real_node_cluster, backend["project"]
    slow = slow_fit_image.build_and_import(images(cluster), cluster.control_plane.node.socket)
    cluster.kubectl("patch", "mlb", NAME, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"image": slow}}))

    def rolled() -> tuple[list[dict], dict] | None:
        servers, workers = pods(cluster, "server"), pods(cluster, "worker")
        fresh = all(ready(p) and p["spec"]["containers"][0]["image"] == slow for p in servers + workers)
        return (servers, workers[0]) if fresh and len(servers) == 2 and len(workers) == 1 else None

    servers, worker = wait_for(rolled, 240, interval=1.0, message="server and worker pods on the slow-fit image")
    server_ips = [p["status"]["podIP"] for p in servers]
    before = versions(server_ips[0], project)
    with cluster_label_studio.client() as client:
        (registered,) = client.ml_backends(project)
        client.create_annotation(backend["tasks"]["boring and dreadful acting"], sentiment_choice("Negative"))
    old = worker["metadata"]["name"]
    started = wait_for(
        lambda: re.search(r"slow fit: started job (\w+)$", pod_log(cluster, old), re.M),
        90,
        interval=0.5,
        message="the fit to start in the worker pod",
    )
    job = started.group(1)
    assert "slow fit: finished" not in pod_log(cluster, old)  # still fitting when the pod goes
    cluster.kubectl("delete", "pod", old, "-n", NS, "--grace-period=1", "--wait=false")
    deleted_at = time.monotonic()
    for ip in server_ips:  # the killed fit published nothing
        assert newest_number(versions(ip, project)) == newest_number(before)

    def new_worker() -> dict | None:
        found = [p for p in pods(cluster, "worker") if p["metadata"]["name"] != old and ready(p)]
        return found[0] if found else None

    replacement = wait_for(new_worker, 120, interval=1.0, message="a new worker pod")["metadata"]["name"]

    def published_everywhere() -> set[str] | None:
        served = {served_version(ip, project) for ip in server_ips}
        return (
            served
            if all(newest_number(versions(ip, project)) > newest_number(before) for ip in server_ips)
            and len(served) == 1
            else None
        )

    (newest,) = wait_for(published_everywhere, 180, interval=1.0, message="the re-run to publish on every server pod")
    print(f"\nworker pod deleted mid-fit: re-trained and served {time.monotonic() - deleted_at:.1f} s later")
    log = pod_log(cluster, replacement)
    assert f"slow fit: started job {job} again" in log and f"slow fit: finished job {job}" in log, log[-3000:]
    assert f"training job {job} of project {project} runs again (its previous attempt was killed)" in log, log[-3000:]
    after = versions(server_ips[0], project)
    assert newest_number(after) == newest_number(before) + 1, (before, after)  # exactly one new version
    assert newest == after["versions"][-1]
    kept = len(after["versions"])  # the oldest may only go to LSML_KEEP_VERSIONS pruning, in order
    assert after["versions"] == (before["versions"] + [newest])[-kept:] and kept >= min(len(before["versions"]) + 1, 5)
    status = requests.post(f"http://{server_ips[0]}:9090/job_status", json={"job": job}, auth=AUTH, timeout=5).json()
    assert status["status"] == "finished" and status["model_version"] == newest, status
    with cluster_label_studio.client() as client:
        (still,) = client.ml_backends(project)
        assert (still["id"], still["url"]) == (registered["id"], registered["url"])
        assert still["readable_state"] == "Connected"
        wait_for(
            lambda: client.ml_backend(still["id"])["model_version"] == newest,
            90,
            interval=2.0,
            message=f"Label Studio to show model_version {newest}",
        )


def test_deleting_the_mlbackend_deregisters_it_and_removes_its_children(
    real_node_cluster, cluster_label_studio, backend
):
    cluster = real_node_cluster
    cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--timeout=120s")
    with cluster_label_studio.client() as client:
        assert client.ml_backends(backend["project"]) == []
    wait_for(
        lambda: not any(pods(cluster, c) for c in ("server", "worker", "redis")),
        120,
        interval=1.0,
        message="every pod of the MLBackend gone",
    )
    # the claim goes once no pod uses it any more (pvc-protection), with its volume (reclaim policy Delete)
    wait_for(
        lambda: cluster.kubectl("get", "pvc", f"{NAME}-models", "-n", NS, check=False).returncode != 0,
        120,
        interval=1.0,
        message="the model claim deleted",
    )
