"""`lsml.watermark`: what a version accounts for, and what catch-up counts as missed (no services needed)."""

from __future__ import annotations

import pytest

from lsml.watermark import Watermark, from_ranges, to_ranges

pytestmark = pytest.mark.unit


def _annotation(ident: int, at: str, **extra) -> dict:
    return {"id": ident, "updated_at": at, "created_at": at, **extra}


def test_ids_are_stored_as_ranges_of_consecutive_ids():
    ids = {1, 2, 3, 7, 9, 10}
    assert to_ranges(ids) == [[1, 3], [7, 7], [9, 10]]
    assert from_ranges(to_ranges(ids)) == ids
    assert from_ranges("junk") == set() and from_ranges([[1], ["a", 2]]) == set()


def test_a_change_after_the_mark_is_missed_unless_a_training_saw_that_very_change():
    mark = Watermark(updated_at="2026-01-01T00:00:10.000000Z", ids={1}, complete=True)
    mark.fold_event("ANNOTATION_CREATED", {"annotation": _annotation(2, "2026-01-01T00:00:12.5Z")})
    assert not mark.missed(_annotation(1, "2026-01-01T00:00:09Z"))  # before the mark
    assert not mark.missed(_annotation(2, "2026-01-01T00:00:12.500000Z"))  # seen by a training
    assert mark.missed(_annotation(2, "2026-01-01T00:00:13Z"))  # updated again since
    assert mark.missed(_annotation(3, "2026-01-01T00:00:11+00:00"))  # never seen: its webhook was lost
    # a cancelled (skipped) annotation matters only when it replaced one the version trained on
    assert not mark.missed(_annotation(4, "2026-01-01T00:00:11Z", was_cancelled=True))
    assert mark.missed(_annotation(1, "2026-01-01T00:00:11Z", was_cancelled=True))


def test_a_newer_webhook_does_not_hide_an_older_lost_one():
    """Why the watermark is not just the newest time a training saw: the lost annotation 2 is older."""
    mark = Watermark(updated_at="2026-01-01T00:00:00Z", ids=set(), complete=True)
    mark.fold_event("ANNOTATION_CREATED", {"annotation": _annotation(3, "2026-01-01T00:00:05Z")})
    assert mark.missed(_annotation(2, "2026-01-01T00:00:04Z"))


def test_deletes_and_catch_ups_full_retrain_are_folded_in():
    mark = Watermark(updated_at="2026-01-01T00:00:00Z", ids={1, 2, 3}, complete=True)
    mark.fold_event("ANNOTATIONS_DELETED", {"annotations": [{"id": 1}, {"id": 2}]})
    mark.fold_event("ANNOTATION_DELETED", {"annotation": {"id": 3}})
    assert mark.ids == set()
    mark.fold_event(
        "START_TRAINING", {"catchup": {"seen": {"8": "2026-01-01T00:00:03Z"}, "deleted": [], "events": 1001}}
    )
    assert mark.ids == {8} and not mark.missed(_annotation(8, "2026-01-01T00:00:03Z"))


def test_advancing_keeps_only_what_changed_after_the_new_mark():
    mark = Watermark(updated_at="2026-01-01T00:00:00Z", complete=True)
    mark.account(_annotation(1, "2026-01-01T00:00:01Z"))
    mark.account(_annotation(2, "2026-01-01T00:00:09Z"))
    mark.advance("2026-01-01T00:00:05Z")
    assert mark.seen == {"2": "2026-01-01T00:00:09Z"} and mark.ids == {1, 2}
    mark.advance("2026-01-01T00:00:02Z")  # never backwards
    assert mark.updated_at == "2026-01-01T00:00:05Z"
    assert Watermark.from_dict(mark.to_dict()) == mark


@pytest.mark.parametrize(
    "claim",
    [{"seen": 1}, {"seen": {"\u00b2": "x"}}, {"seen": {"9" * 5000: "x"}}, {"deleted": 5}, {"seen": None}, "junk"],
)
def test_folding_a_malformed_catch_up_claim_never_raises(claim):
    """A job payload comes back from Redis: whatever its `catchup` holds, folding it happens after `fit` and must
    not lose the version by raising."""
    mark = Watermark(ids={1}, seen={"1": "2026-01-01T00:00:00Z"}, complete=True)
    mark.fold_event("START_TRAINING", {"catchup": claim})
    assert mark.ids == {1} and mark.seen == {"1": "2026-01-01T00:00:00Z"}


def test_ranges_naming_more_ids_than_the_bound_are_ignored_without_expanding_them():
    """A few bytes of ranges in Redis must not become gigabytes of ids in the server and every training."""
    import tracemalloc

    from lsml.watermark import MAX_IDS

    stored = {
        "updated_at": "2026-01-01T00:00:00Z",
        "ids": [[0, MAX_IDS // 2], [MAX_IDS, 2 * MAX_IDS]],
        "complete": True,
    }
    tracemalloc.start()
    try:
        mark = Watermark.from_dict(stored)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mark.ids == set() and not mark.complete and mark.updated_at is None  # catch-up takes a new baseline
    assert peak < 120 * 2**20, f"{peak / 2**20:.0f} MiB to read {len(str(stored))} bytes"
    assert from_ranges([[5, 1], [True, 2], [3, 4]]) == {3, 4}  # backwards and bool runs are junk too
