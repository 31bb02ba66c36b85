"""Catch-up on real pods (issue 18 part 2): worker and server pods deleted while annotating lose no annotation.

One MLBackend (lsml's ``text_classifier`` image, one server, one RQ worker, managed Redis, a model
volume) with ``LSML_CATCHUP_INTERVAL=2`` in its env, and the real Label Studio reachable from the
cluster. Annotations are made through Label Studio's API (which fires its webhooks) in four groups
while the pods go:

1. with every pod running (their webhooks arrive);
2. while the worker pod is deleted (the server queues their trainings in Redis);
3. while the server pod is deleted (it drains for its preStop: each webhook arrives or not);
4. once the old server pod is gone and its replacement cannot start (the node is cordoned, so the
   replacements of both pods stay Pending): nothing serves, so Label Studio's webhooks for these
   certainly fail (Label Studio without a Redis of its own sends them inside the annotation's request).

Then the node is uncordoned. What is asserted holds for every order of events: the newest version
trained on every annotation, read from outside the pods (its ``dataset.json``, the model's own training
set, on the volume's host path; its watermark through ``/versions``), and catch-up recovered at least
group 4 (``lsml_catchup_recovered_total`` of the new server pod, whose counters started with it).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lsml.watermark import from_ranges
from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.label_studio import sentiment_choice
from tests.fixtures.training_metrics import training_idle

from .cluster import images, real_backend
from .cluster import kube_json as _json
from .cluster import pod_ready as ready

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode, pytest.mark.labelstudio]

NAME = "catchup"
NS = "lsml-catchup"
NODE = "lsml-node"
AUTH = ("labelstudio", "pw-" + secrets.token_hex(10))
GROUP = 3  # annotations per group
POSITIVE = ("a lovely film", "great acting", "truly excellent", "wonderful story", "I loved it", "a delight", "superb")
NEGATIVE = ("a dreadful mess", "boring plot", "terrible acting", "far too long", "I hated it", "awful", "bad")
LABELS = ("Positive", "Negative")
#: text -> label, the labels alternating (the first two annotations already give the model both labels)
TEXTS = {text: label for pair in zip(POSITIVE, NEGATIVE, strict=True) for text, label in zip(pair, LABELS, strict=True)}


def component_pods(cluster: KubernetesCluster, component: str, *, terminating: bool = False) -> list[dict]:
    selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component={component}"
    items = _json(cluster, "get", "pods", "-n", NS, "-l", selector)["items"]
    return [p for p in items if terminating or not p["metadata"].get("deletionTimestamp")]


def one_ready(cluster: KubernetesCluster, component: str) -> dict | None:
    found = [p for p in component_pods(cluster, component) if ready(p)]
    return found[0] if len(found) == 1 else None


def recovered(pod_ip: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://{pod_ip}:9090/metrics", auth=AUTH, timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "lsml_catchup_recovered_total"
    )


def checked(pod_ip: str, project: int) -> bool:
    """Catch-up has checked the project (its watermark age is exported once a check saved one)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://{pod_ip}:9090/metrics", auth=AUTH, timeout=5).text
    return any(
        s.name == "lsml_catchup_watermark_age_seconds" and s.labels.get("project") == str(project)
        for f in text_string_to_metric_families(text)
        for s in f.samples
    )


def volume_root(cluster: KubernetesCluster) -> Path:
    """The model volume's directory on the node (local-path-provisioner's host path)."""
    volume = _json(cluster, "get", "pvc", f"{NAME}-models", "-n", NS)["spec"]["volumeName"]
    pv = _json(cluster, "get", "pv", volume)["spec"]
    return Path((pv.get("hostPath") or pv.get("local"))["path"])


@pytest.fixture(scope="module")
def backend(real_node_cluster: KubernetesCluster, operator_in_cluster: str, cluster_label_studio) -> Iterator[dict]:
    def catch_up_every_two_seconds(spec: dict) -> None:
        spec["model"]["env"] = [{"name": "LOG_LEVEL", "value": "INFO"}, {"name": "LSML_CATCHUP_INTERVAL", "value": "2"}]

    with real_backend(
        real_node_cluster,
        cluster_label_studio,
        name=NAME,
        namespace=NS,
        auth=AUTH,
        image=images(real_node_cluster)["text_classifier"],
        texts=TEXTS,
        title="catch-up",
        customize=catch_up_every_two_seconds,
    ) as state:
        try:
            yield state
        finally:
            real_node_cluster.kubectl("uncordon", NODE, check=False)


def test_deleting_worker_and_server_pods_while_annotating_loses_no_annotation(
    real_node_cluster, cluster_label_studio, backend
):
    cluster, project, tasks = real_node_cluster, backend["project"], backend["tasks"]
    texts = iter(TEXTS)
    made: dict[int, str] = {}  # annotation id -> text

    def annotate(count: int) -> list[int]:
        ids = []
        with cluster_label_studio.client() as client:
            for _ in range(count):
                text = next(texts)
                ids.append(client.create_annotation(tasks[text], sentiment_choice(TEXTS[text]))["id"])
                made[ids[-1]] = text
        return ids

    # A first version, and catch-up's first check of it (its baseline), before anything goes missing.
    annotate(2)
    server = wait_for(lambda: one_ready(cluster, "server"), 60, interval=1.0, message="the server pod")
    ip = server["status"]["podIP"]
    wait_for(lambda: training_idle(f"http://{ip}:9090", AUTH), 180, interval=1.0, message="the first trainings to end")
    wait_for(lambda: checked(ip, project), 60, interval=1.0, message="catch-up's first check of the project")

    (worker,) = component_pods(cluster, "worker")
    annotate(GROUP)  # group 1: every pod running
    cluster.kubectl("cordon", NODE)
    try:
        cluster.kubectl("delete", "pod", worker["metadata"]["name"], "-n", NS, "--wait=false")
        annotate(GROUP)  # group 2: the worker goes
        wait_for(
            lambda: (
                worker["metadata"]["name"]
                not in {p["metadata"]["name"] for p in component_pods(cluster, "worker", terminating=True)}
            ),
            330,
            interval=1.0,
            message="the old worker pod gone",
        )
        cluster.kubectl("delete", "pod", server["metadata"]["name"], "-n", NS, "--wait=false")
        annotate(GROUP)  # group 3: the server drains
        wait_for(  # the pod object goes once its containers have stopped
            lambda: (
                server["metadata"]["name"]
                not in {p["metadata"]["name"] for p in component_pods(cluster, "server", terminating=True)}
            ),
            120,
            interval=0.5,
            message="the old server pod gone",
        )
        for component in ("server", "worker"):  # the replacements wait for the cordoned node
            assert all(not p["spec"].get("nodeName") for p in component_pods(cluster, component)), component
        lost = annotate(GROUP)  # group 4: nothing serves
    finally:
        cluster.kubectl("uncordon", NODE)
    uncordoned = time.monotonic()

    server = wait_for(lambda: one_ready(cluster, "server"), 180, interval=1.0, message="the new server pod ready")
    wait_for(lambda: one_ready(cluster, "worker"), 180, interval=1.0, message="the new worker pod ready")
    ip = server["status"]["podIP"]
    root = volume_root(cluster) / str(project) / "versions"

    def newest_version() -> dict:
        report = requests.get(f"http://{ip}:9090/versions", params={"project": str(project)}, auth=AUTH, timeout=5)
        return max(report.json()["details"], key=lambda v: v["number"])

    def accounted_by(version: dict) -> set[int]:
        return from_ranges(version["metadata"].get("watermark", {}).get("ids"))

    def trained_on_everything() -> tuple[dict, dict] | None:
        newest = newest_version()
        accounted = accounted_by(newest)
        dataset_file = root / f"{newest['number']:06d}" / "dataset.json"
        if not set(made) <= accounted or not dataset_file.is_file():
            return None
        dataset = json.loads(dataset_file.read_text())
        return (newest, dataset) if {row["annotation"] for row in dataset.values()} == set(made) else None

    def what_is_missing() -> str:
        """On a timeout (once, under load in a loaded pass): which annotations the newest version lacks, and
        what the worker and server said last."""
        try:
            newest = newest_version()
            logs = [
                f"--- {c} {p['metadata']['name']}:\n"
                + cluster.kubectl("logs", p["metadata"]["name"], "-n", NS, "--tail=40", check=False).stdout
                for c in ("worker", "server")
                for p in component_pods(cluster, c)
            ]
            return (
                f"newest version {newest['name']}, annotations not in its watermark: "
                f"{sorted(set(made) - accounted_by(newest))}, catch-up recovered {recovered(ip):.0f}\n"
                + "\n".join(logs)
            )
        except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the timeout it explains
            return f"(no diagnosis: {type(exc).__name__}: {exc})"

    newest, dataset = wait_for(
        trained_on_everything,
        240,
        interval=1.0,
        message="a version trained on every annotation",
        diagnose=what_is_missing,
    )
    print(
        f"\n{len(made)} annotations, pods deleted meanwhile: version {newest['name']} trained on all of them "
        f"{time.monotonic() - uncordoned:.1f} s after the node was uncordoned; catch-up recovered {recovered(ip):.0f}"
    )
    for row in dataset.values():  # the model's training set holds each annotation with its own label
        assert row["label"] == TEXTS[made[row["annotation"]]]
    assert newest["metadata"]["watermark"]["complete"] is True
    assert recovered(ip) >= len(lost)  # no webhook of group 4 reached any pod: catch-up found each
