"""`label-studio-ml sample` against a real Label Studio: 2,000 tasks, pagination, tokens, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.fixtures.ports import free_port

pytestmark = pytest.mark.labelstudio

LABELS = ["A", "B", "C"]
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="A"/><Choice value="B"/><Choice value="C"/>
  </Choices>
</View>"""
CLI = ["lsml.cli.main", "sample"]  # what `label-studio-ml sample` runs
N_PROBS, N_NONE, N_SCORE_ONLY, N_LABELLED = 1900, 50, 30, 20


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_URL")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", *CLI, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def choices(label: str, probabilities: list[float] | None = None) -> dict:
    item = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    if probabilities is not None:
        item["probabilities"] = dict(zip(LABELS, probabilities, strict=True))
    return item


@pytest.fixture(scope="module")
def big_project(label_studio):
    """One project of 2,000 tasks imported with their predictions (and a few annotations).

    idx < 1900: probabilities; next 50: no prediction; next 30: score only
    (low score = uncertain); last 20: labelled, with the most uncertain
    predictions of all (must be skipped).
    """
    client = label_studio.client(timeout=120)  # a busy 2-core machine answers 2,000-task calls slowly
    project = client.create_project("lsml-sample-2000", CONFIG)
    rng = np.random.default_rng(7)
    probs = rng.dirichlet([0.6, 0.6, 0.6], size=N_PROBS)
    tasks = []
    for i in range(N_PROBS):
        p = [round(float(v), 6) for v in probs[i]]
        tasks.append(
            {
                "data": {"text": f"t{i}", "idx": i},
                "predictions": [
                    {"model_version": "v1", "score": max(p), "result": [choices(LABELS[int(np.argmax(p))], p)]}
                ],
            }
        )
    for i in range(N_PROBS, N_PROBS + N_NONE):
        tasks.append({"data": {"text": f"t{i}", "idx": i}})
    score_only = {}
    for j, i in enumerate(range(N_PROBS + N_NONE, N_PROBS + N_NONE + N_SCORE_ONLY)):
        score_only[i] = 0.05 + 0.9 * j / N_SCORE_ONLY
        tasks.append(
            {
                "data": {"text": f"t{i}", "idx": i},
                "predictions": [{"model_version": "v1", "score": score_only[i], "result": [choices("A")]}],
            }
        )
    for i in range(2000 - N_LABELLED, 2000):
        tasks.append(
            {
                "data": {"text": f"t{i}", "idx": i},
                "predictions": [{"model_version": "v1", "score": 0.34, "result": [choices("A", [0.34, 0.33, 0.33])]}],
                "annotations": [{"result": [choices("B")]}],
            }
        )
    client.import_tasks(project["id"], tasks)
    ids = {t["data"]["idx"]: t["id"] for t in client.iter_tasks(project["id"], 500, fields="task_only")}
    assert len(ids) == 2000
    yield {"id": project["id"], "ids": ids, "probs": probs, "score_only": score_only}
    client.delete_project(project["id"])
    client.close()


def expected_top(project: dict, k: int, strategy: str = "margin") -> list[int]:
    """The batch computed by hand from the stored (rounded) probabilities; score-only tasks: 1 - score.

    margin = 1 - (top1 - top2); entropy = H(p) / log(3).
    """
    info = {}
    for i, p in enumerate(project["probs"]):
        p = np.array([round(float(v), 6) for v in p])
        p = p / p.sum()
        if strategy == "margin":
            top = np.sort(p)[::-1]
            info[i] = 1.0 - (top[0] - top[1])
        else:
            nonzero = p[p > 0]  # a rounded probability may be 0: 0 log 0 = 0
            info[i] = float(-(nonzero * np.log(nonzero)).sum() / np.log(len(p)))
    for i, score in project["score_only"].items():
        info[i] = 1.0 - score
    ranked = sorted(info, key=lambda i: (-info[i], project["ids"][i]))
    return [project["ids"][i] for i in ranked[:k]]


def test_sample_reads_every_page_ranks_by_margin_and_falls_back_to_the_score(label_studio, big_project):
    """One full read (2,000 tasks in pages of 700: two full pages and a partial last one) proves
    pagination, counting, skipping labelled tasks, the margin ranking and the score fallback."""
    result = run_cli(
        "--ls-url",
        label_studio.url,
        "--project",
        str(big_project["id"]),
        "--strategy",
        "margin",
        "--k",
        "2000",
        "--page-size",
        "700",
        "--json",
        env={"LABEL_STUDIO_API_KEY": label_studio.legacy_token},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["total_tasks"] == 2000  # every page was read
    assert out["labelled"] == N_LABELLED
    assert out["without_prediction"] == N_NONE
    assert out["scored"] == N_PROBS + N_SCORE_ONLY
    assert len(out["task_ids"]) == N_PROBS + N_SCORE_ONLY
    assert out["task_ids"][:50] == expected_top(big_project, 50)
    labelled_ids = {big_project["ids"][i] for i in range(2000 - N_LABELLED, 2000)}
    assert not labelled_ids & set(out["task_ids"])
    infos = [c["informativeness"] for c in out["selected"]]
    assert infos == sorted(infos, reverse=True)
    assert any("no usable prediction" in note for note in out["notes"])
    by_id = {c["task_id"]: c for c in out["selected"]}
    for i, score in big_project["score_only"].items():
        c = by_id[big_project["ids"][i]]
        assert c["source"] == "score"
        assert c["informativeness"] == pytest.approx(1.0 - score)
    top = sorted(big_project["probs"][0] / big_project["probs"][0].sum(), reverse=True)
    assert by_id[big_project["ids"][0]]["informativeness"] == pytest.approx(1.0 - (top[0] - top[1]), abs=1e-5)
    assert by_id[big_project["ids"][0]]["source"] == "probabilities"
    assert label_studio.legacy_token not in result.stdout + result.stderr


def test_apply_puts_exactly_the_batch_in_a_data_manager_tab(label_studio, big_project):
    token = label_studio.personal_access_token()
    args = ["--ls-url", label_studio.url, "--api-key", token, "--project", str(big_project["id"]), "--apply"]
    first = run_cli(*args, "--k", "25", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["view"]["created"] is True
    assert out["task_ids"] == expected_top(big_project, 25)  # margin is the default strategy
    client = label_studio.client(timeout=120)
    body = client.get_json(
        "/api/tasks/",
        params={"project": big_project["id"], "view": out["view"]["id"], "page_size": 100, "fields": "task_only"},
    )
    assert sorted(t["id"] for t in body["tasks"]) == sorted(out["task_ids"])
    # A second run moves the same tab to the new batch instead of adding a tab.
    second = run_cli(*args, "--k", "5", "--strategy", "entropy")
    assert second.returncode == 0, second.stderr
    entropy_top = expected_top(big_project, 5, "entropy")
    assert "task ids: " + ",".join(map(str, entropy_top)) in second.stdout
    assert f"updated Data Manager tab 'lsml: next batch' (id {out['view']['id']})" in second.stdout
    body = client.get_json(
        "/api/tasks/",
        params={"project": big_project["id"], "view": out["view"]["id"], "page_size": 100, "fields": "task_only"},
    )
    assert sorted(t["id"] for t in body["tasks"]) == sorted(entropy_top)
    titles = [v["data"].get("title") for v in client.get_json("/api/dm/views/", params={"project": big_project["id"]})]
    assert titles.count("lsml: next batch") == 1
    assert token not in first.stdout + first.stderr + second.stdout + second.stderr
    client.close()


def test_wrong_token_is_a_clear_error_without_the_token(label_studio, big_project):
    bad = "0123456789abcdef0123456789abcdef01234567"
    result = run_cli("--ls-url", label_studio.url, "--api-key", bad, "--project", str(big_project["id"]))
    assert result.returncode == 1
    assert "error: Label Studio" in result.stderr and "HTTP 401" in result.stderr
    assert "API key" in result.stderr
    assert bad not in result.stdout + result.stderr


def test_missing_project_is_a_clear_error(label_studio):
    result = run_cli(
        "--ls-url", label_studio.url, "--project", "987654", env={"LABEL_STUDIO_API_KEY": label_studio.legacy_token}
    )
    assert result.returncode == 1
    assert "error: Label Studio" in result.stderr and "project 987654" in result.stderr


def test_project_without_predictions_says_what_to_do(label_studio, ls_project, ls_client):
    project = ls_project(CONFIG)
    ls_client.import_tasks(project["id"], [{"text": f"x{i}"} for i in range(3)])
    result = run_cli(
        "--ls-url",
        label_studio.url,
        "--project",
        str(project["id"]),
        env={"LABEL_STUDIO_API_KEY": label_studio.legacy_token},
    )
    assert result.returncode == 3
    assert "3 unlabelled task(s) have no usable prediction" in result.stdout
    assert "Retrieve predictions" in result.stderr


def test_missing_url_and_key_and_bad_k_are_usage_errors():
    result = run_cli("--project", "1", "--k", "0")
    assert result.returncode == 2
    assert (
        "--ls-url" in result.stderr and "LABEL_STUDIO_API_KEY" in result.stderr and "--k must be >= 1" in result.stderr
    )


def test_unreachable_label_studio_is_a_clear_error():
    result = run_cli("--ls-url", f"http://127.0.0.1:{free_port()}", "--api-key", "secret-token-xyz", "--project", "1")
    assert result.returncode == 1
    assert "unreachable" in result.stderr
    assert "secret-token-xyz" not in result.stdout + result.stderr
