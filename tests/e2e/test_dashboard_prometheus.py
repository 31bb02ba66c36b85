"""Every query of the Grafana dashboard (charts/lsml-operator/dashboards/lsml.json) returns data from a real
Prometheus (Debian's `prometheus`) after a scripted workload.

The backend is the example text classifier under real gunicorn, driven by a real Label Studio: connect (health,
setup), annotations (webhooks, fits, new versions), Retrieve predictions, a bad request, a pre-labelling job.
Prometheus scrapes it every second with the labels the chart's PodMonitor gives (`namespace`, `mlbackend`).
The operator's metrics come from the operator's own reconciler and metrics module, run on the in-memory
cluster fakes (tests/fixtures/operator_fakes.py) in this process and served over HTTP by prometheus-client
exactly as `lsml-operator --metrics-port` serves them: a real API server is not what these queries are about.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import pytest
import requests

from lsml_operator.reconcile import Trigger
from tests.fixtures.label_studio import SENTIMENT_TEXTS, sentiment_choice
from tests.fixtures.operator_fakes import AVAILABLE, Harness
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.processes import stop_process
from tests.operator.helpers import example, with_identity

pytestmark = pytest.mark.labelstudio

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE, MLBACKEND = "e2e", "demo"


def _dashboard() -> dict:
    spec = importlib.util.spec_from_file_location("lsml_dashboard", ROOT / "hack" / "docs" / "dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dashboard()


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "no prometheus binary: hack/install-system-deps.sh installs Debian's prometheus"
    return found


@pytest.fixture
def prometheus(tmp_path):
    """A Prometheus on a free port; `start(targets)` scrapes {job: (host:port, labels)} every second."""
    started: list[subprocess.Popen] = []

    def start(targets: dict[str, tuple[str, dict[str, str]]]) -> str:
        port = free_port()
        jobs = "".join(
            f"""  - job_name: {job}
    static_configs:
      - targets: ["{target}"]
        labels: {labels!r}
"""
            for job, (target, labels) in targets.items()
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}")
        log = open(tmp_path / "prometheus.log", "ab")
        started.append(
            subprocess.Popen(
                [
                    _prometheus_binary(),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        log.close()
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/-/ready"), 60, 0.5, "Prometheus to be ready")
        return url

    yield start
    for process in started:
        stop_process(process, 20, group=True)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _query(prometheus_url: str, expr: str) -> list[dict]:
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _operator_workload() -> None:
    """Reconcile passes of the operator's reconciler on the fakes: ok passes, a Ready one, a registration that
    fails because Label Studio is down (metrics go to this process's registry, served below)."""
    h = Harness()
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.put_secret("ns1", "ls-token", {"token": "tok"})
    body = with_identity(example("mlbackend-minimal.yaml"), namespace="ns1", uid="uid-dashboard")
    body["spec"]["labelStudio"] = {
        "url": "http://ls.example:8080",
        "apiTokenSecretRef": {"name": "ls-token"},
        "projects": [1],
    }
    h.ls.down = True
    h.rec.reconcile(body, Trigger.CREATE)
    h.ls.down = False
    h.clock.now += 10
    h.rec.reconcile(body, Trigger.RETRY)


ADMIN_TOKEN = "dashboard-admin"


def test_every_dashboard_query_returns_data_after_a_workload(
    label_studio, ls_client, ls_project, start_ml_backend, prometheus
):
    backend = start_ml_backend(
        "text_classifier",
        env={
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.legacy_token,
            "LSML_ADMIN_TOKEN": ADMIN_TOKEN,  # /prelabel is an admin route (SECURITY.md, issue 22 item 4)
        },
    )
    operator_port = free_port()
    # what `lsml-operator --metrics-port` runs; stopped at the end of the test
    server, _thread = prometheus_client.start_http_server(operator_port, addr="127.0.0.1")
    try:
        _run(backend, ls_client, ls_project, prometheus, operator_port)
    finally:
        server.shutdown()
        server.server_close()


def _run(backend, ls_client, ls_project, prometheus, operator_port: int) -> None:
    prom = prometheus(
        {
            "lsml": (backend.url.removeprefix("http://"), {"namespace": NAMESPACE, "mlbackend": MLBACKEND}),
            "lsml-operator": (f"127.0.0.1:{operator_port}", {"namespace": "lsml-system"}),
        }
    )
    wait_for(
        lambda: _query(prom, 'min(up{job=~"lsml|lsml-operator"})'),
        60,
        1,
        "both targets scraped",
        until=lambda r: len(r) == 1 and r[0]["value"][1] == "1" and len(_query(prom, "up")) == 2,
    )

    # the workload: what Label Studio and a person do, plus a bad request and a pre-labelling job
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"data": {"text": text}} for text in SENTIMENT_TEXTS])
    tasks = {t["data"]["text"]: t["id"] for t in ls_client.iter_tasks(project)}
    registered, _ = ls_client.ensure_ml_backend(project, backend.url, title="dashboard")
    for text, label in SENTIMENT_TEXTS.items():
        if label:
            ls_client.create_annotation(tasks[text], sentiment_choice(label))
    wait_for(
        lambda: requests.get(f"{backend.url}/versions", params={"project": str(project)}, timeout=10).json(),
        120,
        1,
        "a version trained from the annotation webhooks",
        until=lambda v: v.get("current"),
    )
    ls_client.run_action(project, "retrieve_tasks_predictions")
    assert requests.post(f"{backend.url}/predict", data=b"{not json", timeout=10).status_code == 400
    job = requests.post(
        f"{backend.url}/prelabel",
        json={"project": project, "batch_size": 4},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["job"]
    wait_for(
        lambda: requests.post(f"{backend.url}/job_status", json={"job": job_id}, timeout=10).json(),
        120,
        1,
        "the pre-labelling job to finish",
        until=lambda s: s.get("status") in ("finished", "failed"),
    )
    _operator_workload()
    assert registered["id"]

    # every query, with the dashboard's variables set to this backend, returns data once a few scrapes saw it
    queries = [
        (panel["title"], target["expr"].replace("$namespace", NAMESPACE).replace("$mlbackend", MLBACKEND))
        for panel in _dashboard()["panels"]
        for target in panel["targets"]
    ]
    assert len(queries) >= 15

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not _query(prom, expr)]

    wait_for(empty, 60, 2, "every dashboard query to return data", until=lambda missing: not missing)
    # the values say the workload happened (not only that the series exist)
    served = _query(prom, f'max by (project) (lsml_model_version_number{{mlbackend="{MLBACKEND}"}})')
    assert any(float(r["value"][1]) >= 1 for r in served), served
    progress = _query(
        prom,
        f'max by (project) (lsml_prelabel_tasks_done{{mlbackend="{MLBACKEND}"}}) '
        f'/ max by (project) (lsml_prelabel_tasks_total{{mlbackend="{MLBACKEND}"}} > 0)',
    )
    assert any(float(r["value"][1]) == 1.0 for r in progress), progress
    fit = _query(prom, f'max by (project) (lsml_model_fit_seconds{{mlbackend="{MLBACKEND}"}})')
    assert fit and all(float(r["value"][1]) >= 0 for r in fit), fit  # the served version's fit, from its metadata
    failures = _query(prom, 'sum(lsml_operator_registration_failures_total{reason="LabelStudioUnreachable"})')
    assert failures and float(failures[0]["value"][1]) >= 1
    requests_total = _query(prom, f'sum(lsml_http_requests_total{{mlbackend="{MLBACKEND}",route="/predict"}})')
    assert requests_total and not math.isnan(float(requests_total[0]["value"][1]))
