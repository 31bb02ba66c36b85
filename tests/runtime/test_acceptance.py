"""Acceptance (`lsml.acceptance`): the comparison of a prediction with the annotation made from it, and its
bounded per-version storage. Label Studio itself: tests/runtime/test_labelstudio_acceptance.py."""

from __future__ import annotations

from lsml import acceptance
from lsml.acceptance import Counts, Observation, compare
from lsml.state import MemoryState


def choice(label: str, **extra) -> dict:
    return {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}, **extra}


def box(rid: str, x: float, label: str, **value) -> dict:
    v = {"x": x, "y": 10.0, "width": 20.0, "height": 30.0, "rotation": 0, "rectanglelabels": [label], **value}
    return {"id": rid, "from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": v}


def span(rid: str, start: int, end: int, label: str) -> dict:
    return {
        "id": rid,
        "from_name": "ner",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "text": "x" * (end - start), "labels": [label]},
    }


def test_a_choice_kept_as_is():
    assert compare([choice("Positive")], [choice("Positive")]) == Counts(kept=1)


def test_a_choice_changed_is_changed_not_deleted_and_added():
    assert compare([choice("Positive")], [choice("Negative")]) == Counts(changed=1)


def test_everything_deleted_and_a_region_drawn_from_scratch():
    assert compare([box("a", 1, "Cat"), box("b", 50, "Dog")], []) == Counts(deleted=2)
    assert compare([], [box("n", 5, "Cat")]) == Counts(added=1)


def test_regions_match_by_id_first_then_by_position():
    pred = [box("a", 1, "Cat"), box("b", 50, "Dog"), box("c", 70, "Dog")]
    ann = [
        box("a", 1, "Cat"),  # kept
        box("b", 55, "Dog"),  # same id, moved: changed
        box("zz", 70, "Cat"),  # new id (the UI re-created it) but the same place, other label: changed
        box("d", 90, "Cat"),  # added
    ]
    assert compare(pred, ann) == Counts(kept=1, changed=2, added=1)


def test_an_id_match_is_not_stolen_by_another_region_at_the_same_position():
    pred = [box("a", 1, "Cat"), box("b", 1, "Dog")]
    ann = [box("b", 1, "Dog"), box("a", 1, "Fox")]
    assert compare(pred, ann) == Counts(kept=1, changed=1)


def test_coordinates_within_the_tolerance_are_the_same_position():
    assert compare([box("a", 1.0, "Cat")], [box("x", 1.0 + acceptance.TOLERANCE / 2, "Cat")]) == Counts(kept=1)
    assert compare([box("a", 1.0, "Cat")], [box("x", 1.5, "Cat")]) == Counts(deleted=1, added=1)


def test_spans_and_controls_of_other_names_never_match():
    pred = [span("s1", 0, 4, "PER"), choice("Positive")]
    ann = [span("s9", 0, 4, "ORG"), {**choice("Positive"), "from_name": "other"}]
    assert compare(pred, ann) == Counts(changed=1, deleted=1, added=1)


def test_relations_and_malformed_items_are_not_regions():
    pred = [box("a", 1, "Cat"), {"type": "relation", "from_id": "a", "to_id": "b"}, "junk", {"no": "value"}]
    assert compare(pred, [box("a", 1, "Cat")]) == Counts(kept=1)
    assert compare(None, {"not": "a list"}) == Counts()


def event(aid: int, parent: int | None, result: list, action: str = "ANNOTATION_CREATED", **fields) -> tuple:
    return action, {
        "annotation": {"id": aid, "parent_prediction": parent, "result": result, **fields},
        "task": {"id": 7},
    }


def test_annotations_are_observed_with_their_parent_else_their_task_and_time():
    found = acceptance.observations(
        [
            event(1, 10, [choice("Positive")]),
            event(2, None, [choice("Positive")], created_at="2026-12-04T21:00:00.5Z"),  # no parent: task + time
            ("ANNOTATIONS_DELETED", {"annotations": [{"id": 1}]}),
            ("START_TRAINING", {"project": {"id": 1}}),
            event(1, 10, [choice("Negative")], "ANNOTATION_UPDATED"),
        ]
    )
    assert found == [
        Observation(1, 10, [choice("Positive")]),
        Observation(2, None, [choice("Positive")], task=7, created_at=1796418000.5),
        Observation(1, None, [], deleted=True),  # deleted: withdraws what it counted
        Observation(1, 10, [choice("Negative")]),
    ]


def test_an_update_replaces_what_the_annotation_counted_and_versions_are_kept_apart():
    state = MemoryState()
    preds = {10: {"result": [choice("Positive")], "model_version": "v1"}, 11: {"result": [], "model_version": "v2"}}

    def fetch(pid: int) -> dict | None:
        return preds.get(pid)

    obs = acceptance.observations([event(1, 10, [choice("Positive")]), event(2, 11, [choice("Negative")])])
    assert acceptance.record(state, "3", obs, fetch) == 2
    assert acceptance.report(state, "3")["v1"]["accepted_share"] == 1.0
    obs = acceptance.observations([event(1, 10, [choice("Negative")], "ANNOTATION_UPDATED"), event(3, 99, [])])
    assert acceptance.record(state, "3", obs, fetch) == 1  # prediction 99 is gone (404): not counted
    report = acceptance.report(state, "3")
    assert report["v1"] == {
        "annotations": 1,
        "predicted": 1,
        "kept": 0,
        "changed": 1,
        "deleted": 0,
        "added": 0,
        "accepted_share": 0.0,
    }
    assert report["v2"]["added"] == 1 and report["v2"]["accepted_share"] is None
    obs = acceptance.observations([event(1, 10, [], "ANNOTATION_UPDATED", was_cancelled=True)])
    acceptance.record(state, "3", obs, fetch)
    assert "v1" not in acceptance.report(state, "3")  # skipped: what it counted is withdrawn
    acceptance.record(
        state, "3", acceptance.observations([("ANNOTATIONS_DELETED", {"annotations": [{"id": 2}]})]), fetch
    )
    assert acceptance.report(state, "3") == {}  # deleted: withdrawn too


def test_a_training_fetches_a_bounded_number_of_predictions_once_each(monkeypatch):
    monkeypatch.setattr(acceptance, "MAX_FETCHES", 2)
    state = MemoryState()
    fetched: list[int] = []

    def fetch(pid: int) -> dict:
        fetched.append(pid)
        return {"result": [choice("Positive")], "model_version": "v1"}

    events = [event(i, 10 + i % 3, [choice("Positive")]) for i in range(6)]  # predictions 10, 11, 12, 10, 11, 12
    assert acceptance.record(state, "3", acceptance.observations(events), fetch) == 4
    assert fetched == [10, 11]


def test_metrics_show_the_report_of_the_last_scrape_only():
    from prometheus_client import generate_latest

    from lsml.server import metrics

    row = {"annotations": 2, "predicted": 3, "kept": 1, "changed": 1, "deleted": 1, "added": 0, "accepted_share": 0.33}
    metrics.acceptance_state({"3": {"v1": row, "v2": row}})
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'lsml_prediction_regions{model_version="v1",outcome="kept",project="3"} 1.0' in text
    assert 'lsml_prediction_annotations{model_version="v2",project="3"} 2.0' in text
    metrics.acceptance_state({"3": {"v2": row}})  # v1 left the report (MAX_VERSIONS): its series go too
    acceptance_lines = [
        line
        for line in generate_latest(metrics.REGISTRY).decode().splitlines()
        if line.startswith(("lsml_prediction_regions{", "lsml_prediction_annotations{"))
    ]  # other families (lsml_model_version_info) may carry a "v1" of an earlier test's project
    assert acceptance_lines and all('model_version="v2"' in line for line in acceptance_lines)
    metrics.acceptance_state({})


def test_storage_is_bounded_per_project_and_version(monkeypatch):
    monkeypatch.setattr(acceptance, "MAX_ANNOTATIONS", 3)
    monkeypatch.setattr(acceptance, "MAX_VERSIONS", 2)
    state = MemoryState()

    def fetch(pid: int) -> dict:
        return {"result": [choice("Positive")], "model_version": f"v{pid}"}

    acceptance.record(state, "3", acceptance.observations([event(i, 1, [choice("Positive")]) for i in range(5)]), fetch)
    assert len(state.get("3", acceptance.STATE_KEY)["annotations"]) == 3
    assert acceptance.report(state, "3")["v1"]["annotations"] == 5  # older ones folded into the totals
    acceptance.record(state, "3", acceptance.observations([event(10, 2, []), event(11, 3, [])]), fetch)
    assert sorted(acceptance.report(state, "3")) == ["v2", "v3"]


def test_without_a_parent_the_tasks_prediction_of_the_version_served_then_is_compared():
    """Task 7 has predictions of v1 (older and newer one) and v2; v1 was served from t=1000, v2 from t=2000."""
    state = MemoryState()
    t = "2026-12-04T21:00:{:02d}Z".format
    base = acceptance.parse_time(t(0))
    task_predictions = {
        7: [
            {"id": 1, "model_version": "v1", "created_at": t(1), "result": [choice("Negative")]},
            {"id": 2, "model_version": "v1", "created_at": t(5), "result": [choice("Positive")]},
            {"id": 3, "model_version": "v2", "created_at": t(20), "result": []},
            {"id": 4, "model_version": "v1", "created_at": t(40), "result": [choice("Negative")]},  # after: unseen
        ]
    }
    fetched: list[int] = []

    def tasks(tid: int) -> list:
        fetched.append(tid)
        return task_predictions.get(tid, [])

    def version_at(when: float) -> str | None:
        return None if when < base else "v1" if when < base + 15 else "v2"

    def no_parent(aid: int, created: str, task: int = 7) -> tuple:
        action, data = event(aid, None, [choice("Positive")], created_at=created)
        return action, {**data, "task": {"id": task}}

    obs = acceptance.observations([no_parent(1, t(10)), no_parent(2, t(30)), no_parent(3, t(10), task=8)])
    counted = acceptance.record(state, "3", obs, lambda pid: None, tasks, version_at)
    report = acceptance.report(state, "3")
    assert counted == 2 and fetched == [7, 8], "one fetch per task, task 8 has no prediction: not counted"
    assert report["v1"]["kept"] == 1 and report["v1"]["annotations"] == 1  # the newest v1 before t=10
    assert report["v2"]["added"] == 1 and report["v2"]["predicted"] == 0
    # before any version was served, or without the store's answer, nothing is compared
    early = acceptance.observations([no_parent(9, "2026-12-04T20:59:00Z")])
    assert acceptance.record(state, "3", early, lambda pid: None, tasks, version_at) == 0
    assert acceptance.record(state, "3", acceptance.observations([no_parent(9, t(10))]), lambda pid: None) == 0


def test_the_version_served_at_a_time_is_the_newest_published_current_one_before_it(tmp_path):
    from lsml.settings import Settings
    from lsml.store import LocalModelStore
    from lsml.versions import version_at
    from tests.fixtures.versions_backend import hold, publish

    store = LocalModelStore(tmp_path)
    v1 = publish(store, "3", {"scores": {"accuracy": 0.9}})
    v2 = hold(store, "3", 0.1)  # a candidate the gate held was never served
    assert version_at(store, None, "3", v1.created_at - 1) is None
    assert version_at(store, None, "3", v2.created_at + 1) == "v1"
    v3 = publish(store, "3", {"scores": {"accuracy": 0.95}})
    assert version_at(store, None, "3", v3.created_at) == "v3"
    pinned = Settings.from_env(env={"LSML_PINNED_VERSIONS": "3=v1"})
    assert version_at(store, pinned, "3", v3.created_at + 1) == "v1"
