"""Issue 11 item 1: `label-studio-ml predict`, the background pre-labelling job, against a real Label Studio 1.23.2.

The CLI runs as a real process (so it can be SIGKILLed); the backend is a
copy of examples/text_classifier trained through `run_training`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsml.settings import Settings
from lsml.state import make_state
from lsml.training import TrainingRequest, run_training
from tests.fixtures.label_studio import SENTIMENT_CONFIG
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.labelstudio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "text_classifier"
CLI = str(Path(sys.executable).parent / "label-studio-ml")
WORDS = ["great", "lovely", "awful", "boring", "fun", "bad", "wonderful", "dreadful"]
SLOW_MODEL = """
import os, time
from model import TextClassifier


class Slow(TextClassifier):
    def predict(self, tasks, context=None, **kwargs):
        time.sleep(float(os.environ.get("TEST_PREDICT_SECONDS", "0")))
        return super().predict(tasks, context, **kwargs)
"""


def _event(task_id: int, text: str, label: str) -> dict:
    return {
        "project": {"id": 1},
        "task": {"id": task_id, "data": {"text": text}},
        "annotation": {
            "id": task_id,
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        },
    }


def make_backend(tmp_path: Path) -> Path:
    """A copy of the text_classifier example, plus a slow variant of its model (slow_model:Slow)."""
    path = tmp_path / "text_classifier"
    shutil.copytree(EXAMPLE, path, ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    (path / "slow_model.py").write_text(SLOW_MODEL)
    return path


@pytest.fixture
def backend(tmp_path) -> Path:
    return make_backend(tmp_path)


def _settings(backend: Path) -> Settings:
    return Settings.from_env(env={}, backend_dir=backend)


def _train(backend: Path, project: int) -> str:
    """Two annotation events: v1 (one label, cannot predict yet), v2 (trained)."""
    result = None
    for i, (text, label) in enumerate([("great and lovely fun", "Positive"), ("awful boring mess", "Negative")]):
        result = run_training(
            "model:TextClassifier",
            TrainingRequest(str(project), "ANNOTATION_CREATED", _event(i, text, label), SENTIMENT_CONFIG),
            _settings(backend),
        )
    return result["model_version"]


def _project_with_tasks(ls_client, ls_project, n: int) -> tuple[int, list[int]]:
    project = ls_project()["id"]
    ls_client.import_tasks(project, [{"data": {"text": f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} #{i}"}} for i in range(n)])
    return project, sorted(t["id"] for t in ls_client.iter_tasks(project))


def _cli(backend: Path, project: int, url: str, token: str, *extra: str, env: dict | None = None, wait: bool = True):
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "MODEL_DIR", "REDIS_URL", "LABEL_STUDIO_"))
    }
    full_env.update(env or {})
    argv = [CLI, "predict", str(backend), "--project", str(project), "--ls-url", url, "--api-key", token, *extra]
    if not wait:
        return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120)


def _by_task(ls_client, project: int) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for p in ls_client.predictions(project=project):
        grouped.setdefault(p["task"], []).append(p)
    return grouped


def _predicted(stdout: str) -> int:
    return int(re.search(r"(\d+) tasks predicted", stdout).group(1))


def test_predict_writes_one_prediction_per_task_with_version_and_score(label_studio, ls_client, ls_project, backend):
    project, task_ids = _project_with_tasks(ls_client, ls_project, 23)
    version = _train(backend, project)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--batch-size", "5")
    assert r.returncode == 0, r.stderr
    assert "23/23 tasks" in r.stderr and "tasks/s" in r.stderr and "ETA" in r.stderr  # the progress line
    assert f"23 predictions of {version} written" in r.stdout
    stored = _by_task(ls_client, project)
    assert sorted(stored) == task_ids
    for predictions in stored.values():
        (p,) = predictions
        assert p["model_version"] == version and 0.0 < p["score"] <= 1.0
        assert p["result"][0]["value"]["choices"][0] in ("Positive", "Negative")
    again = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet")
    assert again.returncode == 0 and "0 predictions" in again.stdout and _predicted(again.stdout) == 0
    assert sum(len(v) for v in _by_task(ls_client, project).values()) == 23  # no duplicates


def test_unlabelled_mode_skips_annotated_tasks_and_untrained_writes_nothing(
    label_studio, ls_client, ls_project, backend
):
    project, task_ids = _project_with_tasks(ls_client, ls_project, 6)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "0 predictions of 0.0.1 written, 6 tasks predicted" in r.stdout  # untrained: no empty predictions
    assert _by_task(ls_client, project) == {}
    ls_client.create_annotation(
        task_ids[0],
        [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}],
    )
    _train(backend, project)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet", "--mode", "unlabelled")
    assert r.returncode == 0, r.stderr
    assert sorted(_by_task(ls_client, project)) == task_ids[1:]


@pytest.mark.parametrize("mode", ["missing", "all"])
def test_resumes_after_sigkill_without_repredicting_finished_pages_or_duplicates(
    label_studio, ls_client, ls_project, backend, mode
):
    n, batch = 60, 5
    project, task_ids = _project_with_tasks(ls_client, ls_project, n)
    version = _train(backend, project)
    env = {"LSML_MODEL": "slow_model:Slow", "TEST_PREDICT_SECONDS": "0.4"}
    proc = _cli(
        backend,
        project,
        label_studio.url,
        label_studio.legacy_token,
        "--batch-size",
        str(batch),
        "--mode",
        mode,
        env=env,
        wait=False,
    )

    def written() -> int:
        if proc.poll() is not None:
            pytest.fail(f"the job exited before the kill: {proc.communicate()}")
        return len(_by_task(ls_client, project))

    wait_for(written, 60, 0.1, what="20 tasks with predictions", until=lambda count: count >= 20)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    killed_at = len(_by_task(ls_client, project))
    assert killed_at < n, "the job finished before the kill"
    checkpoint = make_state(_settings(backend)).get(str(project), "prelabel")
    assert checkpoint["status"] == "running" and checkpoint["version"] == version

    r = _cli(
        backend,
        project,
        label_studio.url,
        label_studio.legacy_token,
        "--batch-size",
        str(batch),
        "--quiet",
        "--mode",
        mode,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "resumed after task" in r.stdout
    assert _predicted(r.stdout) <= n - killed_at + batch  # at most the one page in flight is predicted again
    stored = _by_task(ls_client, project)
    assert sorted(stored) == task_ids
    assert all(len(v) == 1 and v[0]["model_version"] == version for v in stored.values()), {
        t: len(v) for t, v in stored.items() if len(v) != 1
    }


def test_clear_failures_for_unknown_project_refused_token_and_label_studio_down(
    label_studio, ls_client, ls_project, backend
):
    project, _ = _project_with_tasks(ls_client, ls_project, 2)
    _train(backend, project)
    r = _cli(backend, 987654, label_studio.url, label_studio.legacy_token, "--quiet")
    assert r.returncode == 1 and "project 987654 does not exist" in r.stderr, r.stderr
    r = _cli(backend, project, label_studio.url, "not-a-token", "--quiet")
    assert r.returncode == 1 and "refused the API token" in r.stderr, r.stderr
    assert "not-a-token" not in r.stderr + r.stdout
    started = time.monotonic()
    r = _cli(backend, project, f"http://127.0.0.1:{free_port()}", label_studio.legacy_token, "--quiet")
    assert r.returncode == 1 and "unreachable" in r.stderr, r.stderr
    assert time.monotonic() - started < 60
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet", "--model-version", "v9")
    assert r.returncode == 1 and "no version 'v9'" in r.stderr, r.stderr


def test_light_pages_until_predictions_show_up_then_full_pages(
    label_studio, ls_client, ls_project, backend, monkeypatch
):
    """Pages are read `task_only` while no task on them may hold a prediction; a page where one may is read
    again in full (and so are the following pages), so a task with a prediction of this version is skipped."""
    from lsml import prelabel
    from lsml.prelabel import PrelabelRequest, prepare

    monkeypatch.setattr(prelabel, "READ_PAGE_SIZE", 5)
    monkeypatch.syspath_prepend(str(backend))
    project, task_ids = _project_with_tasks(ls_client, ls_project, 15)
    version = _train(backend, project)
    result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]
    ls_client.import_predictions(
        project, [{"task": t, "result": result, "score": 0.5, "model_version": version} for t in task_ids[10:]]
    )  # the last page already has this version
    reads: list[str] = []
    job = prepare(
        "model:TextClassifier",
        PrelabelRequest(str(project), batch_size=5),
        _settings(backend),
        ls_url=label_studio.url,
        api_key=label_studio.legacy_token,
    )
    page = job.client.task_page
    monkeypatch.setattr(job.client, "task_page", lambda *a, **kw: reads.append(kw["fields"]) or page(*a, **kw))
    progress = job.run()
    assert reads == ["task_only", "task_only", "task_only", "all"], reads
    assert progress["predicted"] == 10 and progress["skipped"] == 5 and progress["written"] == 10, progress
    assert progress["read_seconds"] > 0 and progress["write_seconds"] > 0 and progress["predict_seconds"] >= 0
    stored = _by_task(ls_client, project)
    assert sorted(stored) == task_ids and all(len(v) == 1 for v in stored.values())
