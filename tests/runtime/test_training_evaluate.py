"""`lsml.training.evaluate`: what fit gets under the held-out split, candidates in the store and the report."""

from __future__ import annotations

from lsml import LabelStudioMLBase
from lsml.evaluation.split import is_held_out
from lsml.store import LocalModelStore
from lsml.training.evaluate import (
    MAX_METRICS,
    gate_check,
    gate_refusal,
    score_staged,
    training_base,
    training_triggers,
)
from lsml.versions import version_report


def event(task_id):
    return {"event": "ANNOTATION_CREATED", "data": {"task": {"id": task_id}, "annotation": {"id": task_id}}}


def test_events_about_held_out_tasks_never_reach_fit():
    held = next(i for i in range(100) if is_held_out("1", i, 0.5))
    kept = [i for i in range(100) if not is_held_out("1", i, 0.5)][:2]
    coalesced = [event(kept[0]), event(held)]
    got = training_triggers("1", "ANNOTATION_CREATED", event(kept[1])["data"], coalesced, 0.5)
    assert got == ("ANNOTATION_CREATED", event(kept[1])["data"], [event(kept[0])])
    # the trigger itself held out: the newest kept coalesced event becomes the trigger
    got = training_triggers("1", "ANNOTATION_CREATED", event(held)["data"], [event(kept[0])], 0.5)
    assert got == ("ANNOTATION_CREATED", event(kept[0])["data"], [])
    assert training_triggers("1", "ANNOTATION_CREATED", event(held)["data"], [], 0.5) is None
    # events naming no single task pass; fraction 0 changes nothing
    deleted = {"annotations": [{"id": 3}]}
    assert training_triggers("1", "ANNOTATIONS_DELETED", deleted, [], 0.5) == ("ANNOTATIONS_DELETED", deleted, [])
    assert training_triggers("1", "X", event(held)["data"], coalesced, 0.0) == ("X", event(held)["data"], coalesced)


def publish(store, metadata, make_current=True):
    with store.staging("1") as staged:
        (staged / "m").write_text("x")
        return store.publish("1", staged, metadata, make_current=make_current)


def test_a_refused_version_is_kept_reported_as_a_candidate_and_not_built_on(tmp_path, settings):
    store = LocalModelStore(tmp_path / "models")
    publish(store, {"scores": {"accuracy": 0.9}})
    gated = settings.replace(quality_gate="accuracy:0.05")
    assert gate_refusal(gated, store, "1", {"accuracy": 0.86}) is None
    why = gate_refusal(gated, store, "1", {"accuracy": 0.2})
    assert why and "v1" in why
    assert gate_refusal(settings, store, "1", {"accuracy": 0.2}) is None  # no gate configured
    check = gate_check(gated, store, "1", {"accuracy": 0.2})
    assert check == {"metric": "accuracy", "tolerance": 0.05, "score": 0.2, "served": "v1", "served_score": 0.9}
    assert gate_check(gated, store, "1", None)["score"] is None and gate_check(settings, store, "1", {}) is None
    publish(store, {"scores": {"accuracy": 0.2}, "candidate": True, "gate": why, "gate_check": check}, False)
    assert store.current("1").name == "v1" and store.latest("1").name == "v2"
    assert training_base(store, "1").name == "v1"
    report = version_report(store, "1")
    assert report["current"] == "v1" and report["metrics"] == ["accuracy"]
    assert [(d["name"], d["candidate"], d["scores"]) for d in report["details"]] == [
        ("v1", False, {"accuracy": 0.9}),
        ("v2", True, {"accuracy": 0.2}),
    ]
    assert report["details"][1]["gate"] == why and report["details"][1]["gate_check"] == check
    assert "gate_check" not in report["details"][0]
    store.activate("1", "v2")  # served by hand: no longer a candidate, and the next fit builds on it
    assert version_report(store, "1")["details"][1]["candidate"] is False
    assert training_base(store, "1").name == "v2"


def test_a_pinned_version_stays_current_whatever_the_gate_lets_through(tmp_path):
    store = LocalModelStore(tmp_path / "models")
    publish(store, {"scores": {"accuracy": 0.5}})
    store.activate("1", "v1")
    publish(store, {"scores": {"accuracy": 0.9}})
    assert store.current("1").name == "v1"


class OwnMetric(LabelStudioMLBase):
    """Scores itself (`evaluate` overridden); its held-out tasks are given, not fetched (no Label Studio here)."""

    def predict(self, tasks, context=None, **kwargs):
        raise AssertionError("evaluate is overridden: predict is not called for scoring")

    def fetch_held_out_tasks(self, project=None):
        return iter([{"id": 1, "annotations": [{"id": 1, "result": []}]}, {"id": 2, "annotations": []}])

    def evaluate(self, tasks):
        return {"custom": len(tasks) / 4, "nan": float("nan"), **{f"m{i}": 0.5 for i in range(40)}}


class OptedOut(OwnMetric):
    HOLD_OUT = False


def test_a_model_scores_itself_with_evaluate_and_may_opt_out(tmp_path, settings, text_config):
    from lsml.state import MemoryState

    settings = settings.replace(holdout_fraction=0.2, label_studio_url="http://127.0.0.1:9")
    got = score_staged(OwnMetric, "1", text_config, settings, MemoryState(), tmp_path)
    assert got["evaluated_on"] == 2 and got["scores"]["custom"] == 0.5
    assert "nan" not in got["scores"] and len(got["scores"]) == MAX_METRICS  # bounded: /metrics series
    assert score_staged(OptedOut, "1", text_config, settings, MemoryState(), tmp_path) == {}
    no_ls = settings.replace(label_studio_url=None)
    assert (
        "URL is unknown"
        in score_staged(OwnMetric, "1", text_config, no_ls, MemoryState(), tmp_path)["evaluation_error"]
    )


def test_unpin_serves_the_newest_version_the_gate_let_through(tmp_path):
    store = LocalModelStore(tmp_path / "models")
    publish(store, {"scores": {"accuracy": 0.9}})
    store.activate("1", "v1")
    publish(store, {"scores": {"accuracy": 0.9}})
    publish(store, {"scores": {"accuracy": 0.1}, "candidate": True}, make_current=False)
    assert store.unpin("1").name == "v2" and store.current("1").name == "v2"
