"""lsml.active_learning: ranking stored predictions, without a network (the CLI test covers Label Studio)."""

from __future__ import annotations

import pytest

from lsml import active_learning as al

pytestmark = pytest.mark.unit


def task(task_id, probs=None, score=None, annotations=None, version="v1", created="2026-01-01T00:00:00", **extra):
    prediction = {"model_version": version, "created_at": created, "result": []}
    if probs is not None:
        prediction["result"] = [al.choices_result("label", "text", list(probs), list(probs.values()))]
    if score is not None:
        prediction["score"] = score
    t = {"id": task_id, "data": {}, "predictions": [prediction] if (probs or score is not None) else []}
    if annotations is not None:
        t["annotations"] = annotations
    t.update(extra)
    return t


def test_choices_result_names_the_top_label_and_keeps_every_probability():
    item = al.choices_result("digit", "image", ["0", "1", "2"], [0.1, 0.7, 0.2])
    assert item["value"] == {"choices": ["1"]}
    assert item["probabilities"] == {"0": 0.1, "1": 0.7, "2": 0.2}
    assert (item["from_name"], item["to_name"], item["type"]) == ("digit", "image", "choices")
    with pytest.raises(ValueError, match="one probability per label"):
        al.choices_result("d", "i", ["0", "1"], [1.0])


def test_margin_ranking_skips_labelled_tasks_and_counts_tasks_without_prediction():
    tasks = [
        task(1, {"a": 0.9, "b": 0.1}),  # margin info 0.2
        task(2, {"a": 0.55, "b": 0.45}),  # 0.9
        task(3, {"a": 0.5, "b": 0.5}, annotations=[{"was_cancelled": False}]),  # labelled: skipped
        task(4),  # no prediction
        task(5, {"a": 0.7, "b": 0.3}),  # 0.6
        task(6, {"a": 0.5, "b": 0.5}, annotations=[{"was_cancelled": True}]),  # only skipped: still unlabelled, 1.0
    ]
    batch = al.rank_tasks(tasks, "margin", 3, project=9)
    assert batch.task_ids == [6, 2, 5]
    assert [round(c.informativeness, 6) for c in batch.selected] == [1.0, 0.9, 0.6]
    assert (batch.total_tasks, batch.labelled, batch.without_prediction, batch.scored) == (6, 1, 1, 4)
    assert "1 unlabelled task(s) have no usable prediction" in batch.notes[0]


def test_is_labelled_reads_the_count_fields_when_annotations_are_absent():
    assert al.is_labelled({"id": 1, "total_annotations": 2})
    assert al.is_labelled({"id": 1, "is_labeled": True})
    assert not al.is_labelled({"id": 1, "total_annotations": 0, "is_labeled": False})


def test_prediction_without_probabilities_falls_back_to_its_score():
    tasks = [task(1, score=0.9), task(2, score=0.2), task(3, {"a": 0.6, "b": 0.4}, score=0.99)]
    batch = al.rank_tasks(tasks, "least_confidence", 3)
    # informativeness: 1 -> 0.1, 2 -> 0.8 (score), 3 -> (1 - 0.6) * 2 = 0.8 (probabilities win over score)
    assert [(c.task_id, c.source) for c in batch.selected] == [(2, "score"), (3, "probabilities"), (1, "score")]
    assert batch.selected[1].informativeness == pytest.approx(0.8)
    assert any("ranked by their prediction score" in n for n in batch.notes)


@pytest.mark.parametrize("bad", [{"a": "x", "b": 0.5}, {"a": float("nan"), "b": 0.5}, {"a": -1, "b": 2}, {}])
def test_malformed_probabilities_count_as_absent(bad):
    t = {"id": 1, "predictions": [{"score": 0.3, "result": [{"type": "choices", "probabilities": bad}]}]}
    candidate = al.score_task(t, "entropy")
    assert candidate.source == "score" and candidate.informativeness == pytest.approx(0.7)


def test_newest_prediction_is_used_unless_a_model_version_is_given():
    t = task(1, {"a": 0.5, "b": 0.5}, version="v1", created="2026-01-01T00:00:00")
    newer = task(1, {"a": 0.99, "b": 0.01}, version="v2", created="2026-02-01T00:00:00")["predictions"][0]
    t["predictions"].append(newer)
    assert al.score_task(t, "margin").model_version == "v2"
    assert al.score_task(t, "margin").informativeness == pytest.approx(0.02)
    assert al.score_task(t, "margin", model_version="v1").informativeness == pytest.approx(1.0)
    assert al.score_task(t, "margin", model_version="v3") is None


def test_ties_are_broken_by_task_id():
    tasks = [task(i, {"a": 0.5, "b": 0.5}) for i in (30, 10, 20)]
    assert al.rank_tasks(tasks, "entropy", 2).task_ids == [10, 20]


def test_diverse_batch_spreads_over_different_confusions():
    # ten tasks torn between a and b (slightly more uncertain) and ten torn between c and d
    ab = [task(i, {"a": 0.5, "b": 0.5 - i * 1e-3, "c": 0.0, "d": 0.0}) for i in range(1, 11)]
    cd = [task(100 + i, {"a": 0.0, "b": 0.0, "c": 0.5, "d": 0.45 - i * 1e-3}) for i in range(1, 11)]
    plain = al.rank_tasks(ab + cd, "margin", 2)
    assert all(t < 100 for t in plain.task_ids)
    diverse = al.rank_tasks(ab + cd, "margin", 2, diverse=True)
    assert diverse.diverse
    assert sorted(t >= 100 for t in diverse.task_ids) == [False, True]


def test_diverse_needs_probabilities_everywhere_and_says_so():
    batch = al.rank_tasks(
        [task(1, score=0.1), task(2, {"a": 0.6, "b": 0.4}), task(3, score=0.5)], "margin", 2, diverse=True
    )
    assert not batch.diverse and batch.task_ids == [1, 2]  # 0.9 (score 0.1), 0.8 (margin .6/.4), not 0.5
    assert any("--diverse needs per-class probabilities" in n for n in batch.notes)


@pytest.mark.parametrize("k", [0, -3, 1.5, True])
def test_bad_k_and_strategy_are_rejected(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        al.rank_tasks([], "margin", k)
    with pytest.raises(ValueError, match="unknown score strategy"):
        al.rank_tasks([], "best", 3)


def test_view_payload_filters_exactly_the_ids():
    payload = al.view_payload(4, [7, 3], "next")
    assert payload["project"] == 4 and payload["data"]["title"] == "next"
    assert payload["data"]["filters"]["conjunction"] == "or"
    assert [i["value"] for i in payload["data"]["filters"]["items"]] == [7, 3]
    with pytest.raises(ValueError, match="no task ids"):
        al.view_payload(4, [], "next")


def test_batch_to_dict_is_json_ready_and_drops_probability_maps():
    batch = al.rank_tasks([task(1, {"a": 0.6, "b": 0.4})], "confidence", 1, project=2)
    out = batch.to_dict()
    assert out["task_ids"] == [1] and out["project"] == 2 and out["strategy"] == "confidence"
    assert "probabilities" not in out["selected"][0]
    assert out["selected"][0]["informativeness"] == pytest.approx(0.4)
