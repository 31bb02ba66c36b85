"""Scores per version and the quality gate (issue 19 items 1, 2) with a real Label Studio and the RQ stack.

A project whose every task a person labelled Positive; a model that learns the majority label of the tasks
`fetch_annotated_tasks()` gives it (the training part only) and records them. Its third fit is deliberately
broken (it learns the other label): with `LSML_QUALITY_GATE` that version is kept as a candidate and Label
Studio keeps getting the previous version's predictions; without the gate it is served.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from lsml.evaluation.split import is_held_out
from tests.fixtures.label_studio import SENTIMENT_CONFIG, sentiment_choice
from tests.fixtures.polling import wait_for
from tests.fixtures.rq_procs import start_server

pytestmark = [pytest.mark.labelstudio, pytest.mark.redis]

FRACTION = 0.3

MODEL_PY = """
import collections, json, os
from lsml import LabelStudioMLBase


class Majority(LabelStudioMLBase):
    def setup(self):
        self.label = None
        if self.version_dir is not None:
            self.label = json.loads((self.version_dir / "label.json").read_text())

    def predict(self, tasks, context=None, **kwargs):
        if self.label is None:
            return [[] for _ in tasks]
        choice = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [self.label]}}
        return [{"result": [choice], "score": 0.9} for _ in tasks]

    def fit(self, event, data, **kwargs):
        tasks = list(self.fetch_annotated_tasks())
        counts = collections.Counter(a["result"][0]["value"]["choices"][0] for t in tasks for a in t["annotations"])
        label = counts.most_common(1)[0][0]
        log = os.environ["TEST_FIT_LOG"]
        earlier = len(open(log).read().splitlines()) if os.path.exists(log) else 0
        if earlier == 2:  # the third fit is broken on purpose
            label = "Negative" if label == "Positive" else "Positive"
        (self.output_dir / "label.json").write_text(json.dumps(label))
        with open(log, "a") as f:
            base = self.version.name if self.version else None
            f.write(json.dumps({"base": base, "seen": sorted(t["id"] for t in tasks)}) + "\\n")
        return {"label": label}
"""


def write_backend(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(MODEL_PY)
    (path / "_wsgi.py").write_text(
        "from lsml.server import create_app\n\nMODEL = 'model:Majority'\napp = create_app(MODEL)\n"
    )
    return path


def train(url: str, project: int) -> dict:
    body = {"action": "START_TRAINING", "project": {"id": project, "label_config": SENTIMENT_CONFIG}}
    r = requests.post(url + "/webhook", json=body, timeout=10)
    assert r.status_code in (200, 201), r.text
    job = r.json()["job"]

    def ended():
        st = requests.post(url + "/job_status", json={"job": job}, timeout=5).json()
        return st if st.get("status") in ("finished", "failed") else None

    st = wait_for(ended, 90, what=f"training job {job}")
    assert st["status"] == "finished", st
    return st


def versions(url: str, project: int) -> dict:
    r = requests.get(url + "/versions", params={"project": str(project)}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def predicted_version(url: str, project: int, task: dict) -> tuple[str, str]:
    body = {"tasks": [task], "project": f"{project}.1700000000", "label_config": SENTIMENT_CONFIG}
    r = requests.post(url + "/predict", json=body, timeout=10)
    assert r.status_code == 200, r.text
    first = r.json()["results"][0]
    return first["model_version"], first["result"][0]["value"]["choices"][0]


def scored_stack(tmp_path, procs, redis_url, label_studio, ls_client, ls_project, **env: str):
    """A labelled project (every task Positive) and a server + worker on it; v1 and v2 trained and scored."""
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"text": f"text {i}"} for i in range(20)])
    tasks = sorted(ls_client.tasks(project), key=lambda t: t["id"])
    for task in tasks:
        ls_client.create_annotation(task["id"], sentiment_choice("Positive"))
    ids = [t["id"] for t in tasks]
    held = {i for i in ids if is_held_out(str(project), i, FRACTION)}
    assert held and len(held) < len(ids)  # the split has both sides for these ids

    backend = write_backend(tmp_path / "backend")
    log = tmp_path / "fits.jsonl"
    full_env = {
        "LSML_MODEL": "model:Majority",
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.personal_access_token(),
        "LSML_HOLDOUT_FRACTION": str(FRACTION),
        "LSML_CATCHUP_INTERVAL": "0",
        "TEST_FIT_LOG": str(log),
        **env,
    }
    procs.worker(backend, redis_url, **full_env)
    url = start_server(procs, backend, redis_url, workers=1, **full_env)

    for expected in ("v1", "v2"):
        st = train(url, project)
        assert st["model_version"] == expected and st["scores"] == {"accuracy": 1.0, "macro_f1": 1.0}, st
    report = versions(url, project)
    assert report["metrics"] == ["accuracy", "macro_f1"]
    for item in report["details"]:
        assert item["scores"] == {"accuracy": 1.0, "macro_f1": 1.0}
        assert item["metadata"]["evaluated_on"] == len(held)
    seen = [json.loads(line)["seen"] for line in log.read_text().splitlines()]
    assert seen == [sorted(set(ids) - held)] * 2  # fit never saw a held-out task
    return url, project, backend, tasks[0], full_env


def fit_bases(tmp_path) -> list[str | None]:
    return [json.loads(line)["base"] for line in (tmp_path / "fits.jsonl").read_text().splitlines()]


def test_with_the_gate_a_worse_version_is_a_candidate_and_the_previous_one_keeps_serving(
    tmp_path, procs, redis_url, label_studio, ls_client, ls_project
):
    url, project, backend, task, env = scored_stack(
        tmp_path, procs, redis_url, label_studio, ls_client, ls_project, LSML_QUALITY_GATE="accuracy:0.05"
    )
    st = train(url, project)
    assert st["model_version"] == "v3" and st["candidate"] is True
    assert st["scores"]["accuracy"] == 0.0 and "below v2's 1.0000" in st["gate"]
    report = versions(url, project)
    assert report["current"] == "v2" and report["latest"] == "v3"
    v3 = report["details"][-1]
    assert v3["candidate"] is True and "quality gate accuracy:0.05" in v3["gate"]
    assert v3["scores"] == {"accuracy": 0.0, "macro_f1": 0.0}
    assert v3["gate_check"] == {
        "metric": "accuracy",
        "tolerance": 0.05,
        "score": 0.0,
        "served": "v2",
        "served_score": 1.0,
    }
    assert "v3 kept as a candidate, not served" in procs.log("worker")
    assert predicted_version(url, project, task) == ("v2", "Positive")  # what Label Studio keeps getting

    # the next fit builds on v2 (not the refused v3), is good again, and passes the gate
    st = train(url, project)
    assert st["model_version"] == "v4" and not st.get("candidate")
    assert fit_bases(tmp_path) == [None, "v1", "v2", "v2"]
    wait_for(lambda: predicted_version(url, project, task) == ("v4", "Positive"), 10, what="v4 served")

    # activate can still serve a candidate by hand
    cli = [sys.executable, "-m", "lsml.cli.main", "activate", str(backend), "--project", str(project), "v3"]
    out = subprocess.run(cli, env={**procs.env(backend, redis_url), **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: predicted_version(url, project, task) == ("v3", "Negative"), 10, what="v3 served after activate")
    table = subprocess.run(
        [sys.executable, "-m", "lsml.cli.main", "versions", str(backend), "--project", str(project)],
        env={**procs.env(backend, redis_url), **env},
        capture_output=True,
        text=True,
    )
    assert table.returncode == 0 and "accuracy" in table.stdout and "0.0000" in table.stdout, table


def test_without_the_gate_a_worse_version_is_served(tmp_path, procs, redis_url, label_studio, ls_client, ls_project):
    url, project, _backend, task, _env = scored_stack(tmp_path, procs, redis_url, label_studio, ls_client, ls_project)
    st = train(url, project)
    assert st["model_version"] == "v3" and "candidate" not in st and st["scores"]["accuracy"] == 0.0
    assert versions(url, project)["current"] == "v3"
    wait_for(lambda: predicted_version(url, project, task) == ("v3", "Negative"), 10, what="v3 served")
    metrics = requests.get(url + "/metrics", timeout=5).text
    assert f'lsml_model_version_score{{metric="accuracy",project="{project}",served="1",version="v3"}} 0.0' in metrics
    assert f'lsml_model_version_score{{metric="accuracy",project="{project}",served="0",version="v1"}} 1.0' in metrics
