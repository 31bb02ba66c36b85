"""What a training's version claims when catch-up has handed missed changes to a recovery job that still waits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lsml.state import MemoryState
from lsml.training.job import trained_watermark
from lsml.training.queue import TrainingRequest
from lsml.watermark import STATE_KEY, Watermark, training_base

pytestmark = pytest.mark.unit


def _annotation(ident: int) -> dict:
    return {"id": ident, "updated_at": f"2026-01-01T10:00:0{ident}Z"}


def _state_with_a_waiting_recovery() -> tuple[MemoryState, SimpleNamespace]:
    """v1 accounts for annotation 1; catch-up found annotation 2 missed and handed it to recovery job P."""
    before = Watermark(complete=True)
    before.account(_annotation(1))
    advanced = before.copy()
    advanced.account(_annotation(2))
    state = MemoryState()
    state.set(
        "3", STATE_KEY, {"version": "v1", "watermark": advanced.to_dict(), "job": "P", "before": before.to_dict()}
    )
    return state, SimpleNamespace(name="v1", metadata={"watermark": before.to_dict()})


def test_a_training_beside_a_waiting_recovery_does_not_claim_what_catch_up_handed_over():
    """Training T ran while recovery job P waited. Built on catch-up's advanced watermark, T's version claimed
    annotation 2, which T never saw; P lost afterwards (a restart drops the embedded queue's waiting jobs), catch-up
    compared with T's version, found nothing missing, and annotation 2 was never trained on."""
    state, v1 = _state_with_a_waiting_recovery()
    running = TrainingRequest("3", "ANNOTATION_CREATED", {"annotation": _annotation(3)})
    published = trained_watermark(state, "3", v1, running, None, job_id="T")
    assert published.ids == {1, 3}, "T saw annotation 3 and built on v1's 1; 2 is P's"

    # the recovery job itself claims what it was handed
    recovery = TrainingRequest("3", "ANNOTATION_CREATED", {"annotation": _annotation(2)})
    assert trained_watermark(state, "3", v1, recovery, None, job_id="P").ids == {1, 2}
    # the check compares with the advanced watermark: what P was handed is not found missing again meanwhile
    assert training_base(state, "3", v1).ids == {1, 2}
