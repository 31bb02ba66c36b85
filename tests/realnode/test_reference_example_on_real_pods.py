"""A reference label-studio-ml-backend example, built by its own Dockerfile, as an MLBackend on the real node.

The image is ``sklearn_text_classifier``'s own ``Dockerfile`` with the documented one-line change
(``pip install "lsml[sdk]"`` for ``pip install -r requirements-base.txt``), plus the two edits that
only stand in for Docker Hub, which is not reachable here: its ``FROM python:${PYTHON_VERSION}-slim``
names the local python stand-in, and its ``# syntax=docker/dockerfile:1`` directive is dropped (the
engine's built-in frontend parses the file). ``reference_example_image`` says how and asserts that
nothing else changes. The example's ``_wsgi.py`` and ``model.py`` are unmodified; the operator runs them
as it runs any image: lsml's serving command, the RQ worker (``label-studio-ml worker /app``), managed
Redis, a model volume, uid 10001, a read-only root.

What it shows: Ready; Label Studio registers the Service; the example's ``fit`` runs in the worker pod
(reading the labelled tasks back from Label Studio with its own label_studio_sdk client, through the
cluster's DNS); Label Studio and a client of the Service get the trained example's predictions.

The example keeps its pipeline in a module global that `fit` resets only in the process that ran it
(docs/migrating-from-label-studio-ml-backend.md, "One behaviour to know"): the server pod asks for its
first prediction only after the training, so it loads what `fit` saved in MODEL_DIR.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.kubernetes import KubernetesCluster, wait_for
from tests.fixtures.label_studio import SENTIMENT_CONFIG, SENTIMENT_TEXTS, sentiment_choice
from tests.fixtures.training_metrics import training_idle

from . import reference_example_image
from .cluster import LS_URL, images, real_backend
from .cluster import kube_json as _json
from .cluster import pod_ready as ready

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode, pytest.mark.labelstudio]

NAME = "sklearnref"
NS = "lsml-reference"
AUTH = ("labelstudio", "pw-" + secrets.token_hex(10))
LABELLED = {text: label for text, label in SENTIMENT_TEXTS.items() if label}


def component_pods(cluster: KubernetesCluster, component: str) -> list[dict]:
    selector = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component={component}"
    items = _json(cluster, "get", "pods", "-n", NS, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def backend(real_node_cluster: KubernetesCluster, operator_in_cluster: str, cluster_label_studio) -> Iterator[dict]:
    cluster = real_node_cluster
    began = time.monotonic()
    image = reference_example_image.build_and_import(images(cluster), cluster.control_plane.node.socket)
    print(f"\nreference example image built and imported in {time.monotonic() - began:.1f} s: {image}")

    def the_examples_own_variables(spec: dict) -> None:  # its docker-compose.yml's, and LOG_LEVEL as there
        spec["model"]["env"] = [
            {"name": "LOG_LEVEL", "value": "INFO"},
            {"name": "LABEL_STUDIO_HOST", "value": LS_URL},
            {"name": "START_TRAINING_EACH_N_UPDATES", "value": "1"},
        ]

    with real_backend(
        cluster,
        cluster_label_studio,
        name=NAME,
        namespace=NS,
        auth=AUTH,
        image=image,
        texts=SENTIMENT_TEXTS,
        title="sklearn reference example",
        customize=the_examples_own_variables,
    ) as state:
        print(f"kubectl apply -> Ready=True: {state['ready_seconds']:.1f} s")
        yield {**state, "image": image}


def test_the_examples_own_image_runs_ready_with_server_and_worker(real_node_cluster, backend):
    cluster = real_node_cluster
    for component in ("server", "worker"):
        (pod,) = component_pods(cluster, component)
        assert ready(pod), pod["status"]
        assert pod["spec"]["containers"][0]["image"] == backend["image"]
    (server,) = component_pods(cluster, "server")
    ip = server["status"]["podIP"]
    readyz = requests.get(f"http://{ip}:9090/readyz", timeout=5).json()
    assert readyz["model_class"].endswith("SklearnTextClassifier"), readyz  # found through _wsgi.py's init_app


def test_label_studio_registers_it_and_the_worker_pod_trains_the_example(
    real_node_cluster, cluster_label_studio, backend
):
    cluster, project, tasks = real_node_cluster, backend["project"], backend["tasks"]
    with cluster_label_studio.client() as client:
        (registered,) = wait_for(
            lambda: (lambda b: b if len(b) == 1 else None)(client.ml_backends(project)),
            90,
            interval=2.0,
            message="exactly one ML backend registered",
        )
        assert registered["url"] == f"http://{NAME}.{NS}.svc:9090"
        assert registered["readable_state"] == "Connected", registered
        for text, label in LABELLED.items():
            client.create_annotation(tasks[text], sentiment_choice(label))
    (server,) = component_pods(cluster, "server")
    ip = server["status"]["podIP"]
    # Label Studio without Redis sends each webhook inside the annotation's request: every trigger is queued
    # by now, so an idle queue with a published version means the last fit (it saw every label) is done.
    wait_for(
        lambda: training_idle(f"http://{ip}:9090", AUTH), 240, interval=1.0, message="every queued training to end"
    )

    def newest() -> str | None:
        report = requests.get(f"http://{ip}:9090/versions", params={"project": str(project)}, auth=AUTH, timeout=5)
        return report.json()["current"]

    version = wait_for(newest, 60, interval=1.0, message="a published version")
    (worker,) = component_pods(cluster, "worker")
    log = cluster.kubectl("logs", worker["metadata"]["name"], "-n", NS).stdout
    assert "lsml-training" in log  # the example's fit ran in the worker pod
    with cluster_label_studio.client() as client:
        wait_for(
            lambda: client.ml_backend(registered["id"])["model_version"] == version,
            90,
            interval=2.0,
            message=f"Label Studio to show model_version {version}",
        )
        client.run_action(project, "retrieve_tasks_predictions")  # Label Studio -> the Service -> /predict
        stored = {p["task"]: p for p in client.predictions(project=project) if p["model_version"] == version}
    assert set(stored) == set(tasks.values()), stored
    for text, label in LABELLED.items():  # the trained example gives the labelled texts their own labels
        assert stored[tasks[text]]["result"][0]["value"]["choices"] == [label], (text, stored[tasks[text]])
    backend["version"] = version


def test_predict_through_the_service_answers_with_the_trained_examples_prediction(real_node_cluster, backend):
    cluster = real_node_cluster
    cluster_ip = _json(cluster, "get", "service", NAME, "-n", NS)["spec"]["clusterIP"]
    texts = list(LABELLED)
    body = {
        "tasks": [{"id": i + 1, "data": {"text": text}} for i, text in enumerate(texts)],
        "project": f"{backend['project']}.0",
        "label_config": SENTIMENT_CONFIG,
        "params": {},
    }
    response = requests.post(f"http://{cluster_ip}:9090/predict", json=body, auth=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    results = answer["results"]
    assert len(results) == len(texts), answer
    for text, prediction in zip(texts, results, strict=True):
        assert prediction["result"][0]["value"]["choices"] == [LABELLED[text]], (text, prediction)
        assert 0.5 < prediction["score"] <= 1.0, prediction  # the example's own score: the top probability


def test_deleting_it_deregisters_it_from_label_studio(real_node_cluster, cluster_label_studio, backend):
    real_node_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--timeout=120s")
    with cluster_label_studio.client() as client:
        assert client.ml_backends(backend["project"]) == []
    wait_for(
        lambda: not any(component_pods(real_node_cluster, c) for c in ("server", "worker", "redis")),
        120,
        interval=1.0,
        message="every pod of the MLBackend gone",
    )
