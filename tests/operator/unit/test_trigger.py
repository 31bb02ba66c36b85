"""Trigger -> Policy: the one table that says how much each kind of pass trusts the caches."""

from __future__ import annotations

import pytest

from lsml_operator.reconcile import Prune, Trigger, policy
from lsml_operator.reconcile.trigger import POLICIES, RERUN

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("trigger", "full", "prune", "wait_if_busy"),
    [
        (Trigger.CREATE, True, Prune.NONE, True),
        (Trigger.UPDATE, True, Prune.ASK_API, True),
        (Trigger.RESUME, True, Prune.SEEN, True),
        (Trigger.RESYNC, True, Prune.SEEN, False),
        (Trigger.RETRY, False, Prune.NONE, False),
        (Trigger.DIAGNOSE, False, Prune.NONE, False),
        (Trigger.CHILD_EVENT, False, Prune.NONE, False),
    ],
)
def test_each_trigger_maps_to_its_policy(trigger, full, prune, wait_if_busy):
    p = policy(trigger)
    assert (p.full, p.prune, p.wait_if_busy) == (full, prune, wait_if_busy)


def test_every_trigger_has_a_policy_and_the_rerun_is_a_cheap_one():
    assert set(POLICIES) == set(Trigger)
    assert not policy(RERUN).full and policy(RERUN).prune is Prune.NONE
