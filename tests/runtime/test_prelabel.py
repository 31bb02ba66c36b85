"""Issue 11 item 1: `label-studio-ml predict`, the background pre-labelling job, against a real Label Studio 1.23.2.

The CLI runs as a real process (so it can be SIGKILLed); the backend is a
copy of examples/text_classifier trained through `run_training`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lsml.state import make_state
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.prelabel_backend import (
    CLI,
    backend_settings,
    make_backend,
    predictions_by_task,
    project_with_tasks,
    train_two_versions,
)

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def backend(tmp_path) -> Path:
    return make_backend(tmp_path)


def _cli(backend: Path, project: int, url: str, token: str, *extra: str, env: dict | None = None, wait: bool = True):
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "MODEL_DIR", "REDIS_URL", "LABEL_STUDIO_"))
    }
    full_env.update(env or {})
    argv = [CLI, "predict", str(backend), "--project", str(project), "--ls-url", url, "--api-key", token, *extra]
    if not wait:
        return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120)


def _predicted(stdout: str) -> int:
    return int(re.search(r"(\d+) tasks predicted", stdout).group(1))


def test_predict_writes_one_prediction_per_task_with_version_and_score(label_studio, ls_client, ls_project, backend):
    project, task_ids = project_with_tasks(ls_client, ls_project, 23)
    version = train_two_versions(backend, project)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--batch-size", "5")
    assert r.returncode == 0, r.stderr
    assert "23/23 tasks" in r.stderr and "tasks/s" in r.stderr and "ETA" in r.stderr  # the progress line
    assert f"23 predictions of {version} written" in r.stdout
    stored = predictions_by_task(ls_client, project)
    assert sorted(stored) == task_ids
    for predictions in stored.values():
        (p,) = predictions
        assert p["model_version"] == version and 0.0 < p["score"] <= 1.0
        assert p["result"][0]["value"]["choices"][0] in ("Positive", "Negative")
    again = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet")
    assert again.returncode == 0 and "0 predictions" in again.stdout and _predicted(again.stdout) == 0
    assert sum(len(v) for v in predictions_by_task(ls_client, project).values()) == 23  # no duplicates


def test_unlabelled_mode_skips_annotated_tasks_and_untrained_writes_nothing(
    label_studio, ls_client, ls_project, backend
):
    project, task_ids = project_with_tasks(ls_client, ls_project, 6)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "0 predictions of 0.0.1 written, 6 tasks predicted" in r.stdout  # untrained: no empty predictions
    assert predictions_by_task(ls_client, project) == {}
    ls_client.create_annotation(
        task_ids[0],
        [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}],
    )
    train_two_versions(backend, project)
    r = _cli(backend, project, label_studio.url, label_studio.legacy_token, "--quiet", "--mode", "unlabelled")
    assert r.returncode == 0, r.stderr
    assert sorted(predictions_by_task(ls_client, project)) == task_ids[1:]


@pytest.mark.parametrize("mode", ["missing", "all"])
def test_resumes_after_sigkill_without_repredicting_finished_pages_or_duplicates(
    label_studio, ls_client, ls_project, backend, mode
):
    n, batch = 60, 5
    project, task_ids = project_with_tasks(ls_client, ls_project, n)
    version = train_two_versions(backend, project)
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
        return len(predictions_by_task(ls_client, project))

    wait_for(written, 60, 0.1, what="20 tasks with predictions", until=lambda count: count >= 20)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    killed_at = len(predictions_by_task(ls_client, project))
    assert killed_at < n, "the job finished before the kill"
    checkpoint = make_state(backend_settings(backend)).get(str(project), "prelabel")
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
    stored = predictions_by_task(ls_client, project)
    assert sorted(stored) == task_ids
    assert all(len(v) == 1 and v[0]["model_version"] == version for v in stored.values()), {
        t: len(v) for t, v in stored.items() if len(v) != 1
    }


def test_clear_failures_for_unknown_project_refused_token_and_label_studio_down(
    label_studio, ls_client, ls_project, backend
):
    project, _ = project_with_tasks(ls_client, ls_project, 2)
    train_two_versions(backend, project)
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
    project, task_ids = project_with_tasks(ls_client, ls_project, 15)
    version = train_two_versions(backend, project)
    result = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]
    ls_client.import_predictions(
        project, [{"task": t, "result": result, "score": 0.5, "model_version": version} for t in task_ids[10:]]
    )  # the last page already has this version
    reads: list[str] = []
    job = prepare(
        "model:TextClassifier",
        PrelabelRequest(str(project), batch_size=5),
        backend_settings(backend),
        ls_url=label_studio.url,
        api_key=label_studio.legacy_token,
    )
    page = job.client.task_page
    monkeypatch.setattr(job.client, "task_page", lambda *a, **kw: reads.append(kw["fields"]) or page(*a, **kw))
    progress = job.run()
    assert reads == ["task_only", "task_only", "task_only", "all"], reads
    assert progress["predicted"] == 10 and progress["skipped"] == 5 and progress["written"] == 10, progress
    assert progress["read_seconds"] > 0 and progress["write_seconds"] > 0 and progress["predict_seconds"] >= 0
    stored = predictions_by_task(ls_client, project)
    assert sorted(stored) == task_ids and all(len(v) == 1 for v in stored.values())
