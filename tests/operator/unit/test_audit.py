"""The audit (lsml_operator/reconcile/audit.py): a child deleted while no watch followed is found and applied again.

kopf re-lists a resource when its watch cannot resume (410 Gone) and reports what exists, never what was deleted in
between. That fault needs a watch cut and etcd compacted under it on a real cluster; here the fake's object is
deleted with no watch event (what the operator sees of such a deletion), on FakeKube. `Kube.names` itself, the
one request the audit makes, runs against the real API server in tests/operator/test_kube_names_cluster.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from lsml_operator.reconcile import Trigger
from lsml_operator.settings import OperatorSettings
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import Harness

pytestmark = pytest.mark.unit

NS = "ns1"
RESYNC = 300.0
AUDIT = 600.0


def _mlb(name: str = "demo") -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid=f"uid-mlb-{name}")
    body["metadata"]["name"] = name
    return body


def _harness(audit_seconds: float = AUDIT) -> Harness:
    return Harness(OperatorSettings(resync_seconds=RESYNC, audit_seconds=audit_seconds, retry_base_seconds=5))


def _resync_at(h: Harness, seconds: float, *mlbs: dict[str, Any]) -> None:
    h.clock.now = 1000.0 + seconds
    for mlb in mlbs:
        h.rec.reconcile(mlb, Trigger.RESYNC)


def _vanish(h: Harness, kind: str, name: str) -> None:
    """A deletion no watch event reports (made while kopf's watch was re-listing)."""
    del h.kube.objects[(kind, NS, name)]


def test_a_child_deleted_unseen_is_applied_again_by_the_first_resync_after_the_audit_period():
    h = _harness()
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)
    _vanish(h, "Deployment", "demo-server")
    # a resync before the audit is due trusts the cache: the hole the audit closes
    _resync_at(h, RESYNC, mlb)
    assert ("Deployment", NS, "demo-server") not in h.kube.objects
    assert [c for c in h.kube.calls if c[0] == "names"] == []
    h.kube.calls.clear()
    _resync_at(h, AUDIT, mlb)
    assert ("Deployment", NS, "demo-server") in h.kube.objects, "the audit found it gone and the pass applied it"
    assert sorted(c for c in h.kube.calls if c[0] == "names") == [
        ("names", "Deployment", NS),
        ("names", "Service", NS),
    ], "one LIST per kind the cache holds in the namespace"
    assert h.kube.applies() == ["Deployment/demo-server"], "only the gone child is written"


def test_an_audit_that_finds_everything_in_place_writes_nothing_and_waits_a_period():
    h = _harness()
    mlbs = [_mlb("a"), _mlb("b")]
    for mlb in mlbs:
        h.rec.reconcile(mlb, Trigger.CREATE)
    h.kube.calls.clear()
    _resync_at(h, AUDIT, *mlbs)
    assert h.kube.applies() == []
    assert len([c for c in h.kube.calls if c[0] == "names"]) == 2, "the namespace is audited once, by its first resync"
    h.kube.calls.clear()
    _resync_at(h, AUDIT + RESYNC, *mlbs)
    assert [c for c in h.kube.calls if c[0] == "names"] == [], "not again before a period has passed"


def test_another_mlbackend_with_a_gone_child_gets_its_resync_at_the_next_tick():
    h = _harness()
    a, b = _mlb("a"), _mlb("b")
    for mlb in (a, b):
        h.rec.reconcile(mlb, Trigger.CREATE)
    _vanish(h, "Service", "b")
    h.clock.now = 1000.0 + AUDIT
    assert h.rec.tick_due(b) is Trigger.RESYNC
    h.rec.reconcile(a, Trigger.RESYNC)  # a's resync runs the namespace's audit
    assert ("Service", NS, "b") not in h.kube.objects, "a's pass applies only a's children"
    h.rec.reconcile(b, Trigger.RESYNC)
    assert ("Service", NS, "b") in h.kube.objects
    # b was resynced just now; had the audit not asked, its next resync would be a period away
    h.clock.now += 1
    assert h.rec.tick_due(b) is None


def test_the_audit_asks_the_next_tick_for_the_resync_of_an_mlbackend_that_just_had_one():
    h = _harness()
    a, b = _mlb("a"), _mlb("b")
    for mlb in (a, b):
        h.rec.reconcile(mlb, Trigger.CREATE)
    h.clock.now = 1000.0 + AUDIT - 1
    h.rec.reconcile(b, Trigger.RESYNC)  # b's resync just before the audit was due: the next one is a period away
    _vanish(h, "Service", "b")
    h.clock.now = 1000.0 + AUDIT
    assert h.rec.tick_due(b) is None
    h.rec.reconcile(a, Trigger.RESYNC)
    assert h.rec.tick_due(b) is Trigger.RESYNC, "the audit found b's Service gone: b's pass is due at once"
    h.rec.reconcile(b, Trigger.RESYNC)
    assert ("Service", NS, "b") in h.kube.objects


def test_a_child_created_while_the_audits_list_is_on_the_wire_is_not_taken_for_gone():
    h = _harness()
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)
    service = h.kube.objects[("Service", NS, "demo")]
    _vanish(h, "Service", "demo")  # gone before the LIST...

    def recreated() -> None:  # ...and back (applied, shown by its watch) after the LIST's snapshot, before its answer
        if h.kube.calls[-1] == ("names", "Service", NS):
            h.kube.objects[("Service", NS, "demo")] = service
            h.rec.observe_child(service)

    h.kube.during_names = recreated
    h.kube.calls.clear()
    _resync_at(h, AUDIT, mlb)
    assert ("Service", NS, "demo") in h.kube.objects
    touched = [c for c in h.kube.calls if c[0] != "names" and c[1:] == ("Service", "demo")]
    assert touched == [], "seen after the audit's mark: kept in the cache, neither read nor applied again"


def test_an_audit_whose_list_fails_leaves_the_cache_and_the_pass_alone():
    h = _harness()
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)
    h.kube.forbidden.add("Deployment")  # RBAC refuses that kind's LIST (and, for the test's sake, every call on it)
    _resync_at(h, AUDIT, mlb)  # does not raise
    h.kube.forbidden.clear()
    assert ("names", "Service", NS) in h.kube.calls, "the other kinds are still audited"


def test_an_audit_period_of_zero_lists_nothing():
    h = _harness(audit_seconds=0)
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)
    for n in range(1, 5):
        _resync_at(h, n * AUDIT, mlb)
    assert [c for c in h.kube.calls if c[0] == "names"] == []
