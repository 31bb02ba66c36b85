"""The real-pod layer's shared names and steps: where the operator and Label Studio live, the node's images,
and an MLBackend made Ready there."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.label_studio import SENTIMENT_CONFIG
from tests.fixtures.mlbackend import example

OPERATOR_NS = "lsml-system"
LS_NS = "label-studio"
LS_SERVICE_PORT = 8080


def images(cluster: KubernetesCluster) -> dict[str, str]:
    """name -> image reference of lsml's images imported into the real node (hack/images/build's names)."""
    return cluster.control_plane.node.images


def kube_json(cluster: KubernetesCluster, *args: str) -> Any:
    """`kubectl ARGS -o json`, parsed."""
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def pod_ready(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and all(
        c.get("ready") for c in pod["status"].get("containerStatuses", []) or [{}]
    )


def mlb_condition(mlb: dict, kind: str) -> dict:
    """The MLBackend's status condition of type `kind` ({} when it has none yet)."""
    return next((c for c in mlb.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def apply_backend_secrets(cluster: KubernetesCluster, namespace: str, token: str, auth: tuple[str, str]) -> None:
    """The Secrets an MLBackend of these tests names: Label Studio's token (`label-studio-token`, key `token`)
    and the backend's Basic auth (`backend-auth`, keys `user` and `password`)."""
    items = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "label-studio-token"},
            "stringData": {"token": token},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "backend-auth"},
            "stringData": {"user": auth[0], "password": auth[1]},
        },
    ]
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


LS_URL = f"http://label-studio.{LS_NS}.svc:{LS_SERVICE_PORT}"  # Label Studio as the pods reach it


@contextmanager
def real_backend(
    cluster: KubernetesCluster,
    label_studio: Any,
    *,
    name: str,
    namespace: str,
    auth: tuple[str, str],
    image: str,
    texts: Iterable[str],
    title: str,
    customize: Callable[[dict], None] = lambda spec: None,
) -> Iterator[dict]:
    """The shape every real-pod MLBackend shares: the example manifest with lsml's images, small requests, a
    1Gi volume, Basic auth and a fresh sentiment project; `customize(spec)` adds what one test needs. Yields
    {project, tasks (text -> task id), mlb (as it was Ready), ready_seconds (apply -> Ready)}, a dict the tests
    add their own findings to. Deleted (MLBackend, then project) on leaving."""
    cluster.kubectl("create", "namespace", namespace, check=False)
    with label_studio.client() as client:
        project = client.create_project(f"{name}-{secrets.token_hex(3)}", SENTIMENT_CONFIG)["id"]
        client.import_tasks(project, [{"data": {"text": text}} for text in texts])
        tasks = {t["data"]["text"]: t["id"] for t in client.iter_tasks(project)}
    apply_backend_secrets(cluster, namespace, label_studio.legacy_token, auth)
    mlb = copy.deepcopy(example("mlbackend.yaml"))
    mlb["metadata"] = {"name": name, "namespace": namespace}
    spec = mlb["spec"]
    spec["image"] = image
    spec["server"]["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
    spec["redis"]["image"] = images(cluster)["redis"]
    spec["storage"] = {"size": "1Gi"}
    spec["basicAuth"] = {"secretName": "backend-auth", "usernameKey": "user", "passwordKey": "password"}
    spec["labelStudio"].update({"url": LS_URL, "projects": [project], "title": title})
    customize(spec)
    applied = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(mlb))

    def is_ready() -> dict | None:
        body = kube_json(cluster, "get", "mlb", name, "-n", namespace)
        return body if mlb_condition(body, "Ready").get("status") == "True" else None

    body = wait_for(is_ready, 300, interval=1.0, message=f"MLBackend {name} Ready=True")
    try:
        yield {"project": project, "tasks": tasks, "mlb": body, "ready_seconds": time.monotonic() - applied}
    finally:
        cluster.kubectl("delete", "mlb", name, "-n", namespace, "--ignore-not-found", "--timeout=120s", check=False)
        with label_studio.client() as client:
            try:
                client.delete_project(project)
            except Exception:  # noqa: BLE001 - best effort
                pass


def import_into_node(docker: str, env: dict[str, str], ref: str, containerd_socket: object) -> None:
    """`docker save REF | ctr images import`: an image built by the test's engine, into the node's containerd
    (k8s.io namespace), where the kubelet finds it without a registry."""
    save = subprocess.Popen([docker, "save", ref], env=env, stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["ctr", "-a", str(containerd_socket), "-n", "k8s.io", "images", "import", "-"],
        stdin=save.stdout,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if save.wait() != 0 or imported.returncode != 0:
        pytest.fail(f"importing {ref} into the node failed: {imported.stderr[-2000:]}", pytrace=False)
