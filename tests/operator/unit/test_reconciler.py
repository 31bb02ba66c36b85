"""The Reconciler on an in-memory Kube and Label Studio (tests/fixtures/operator_fakes.py): which calls a pass
makes for each trigger, the 422 -> replace path, Label Studio backoff, status-write suppression, unwiring, and
that forgetting one MLBackend keeps its neighbours' caches. No control plane: each test runs in milliseconds."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from lsml_operator.kube import Invalid
from lsml_operator.kube_errors import APIError, ServerError
from lsml_operator.reconcile import Trigger
from lsml_operator.reconcile.quality_step import QualityResult
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE, Harness

pytestmark = pytest.mark.unit

NS = "ns1"


def _mlb(name: str = "demo", uid: str | None = None, **spec: Any) -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid=uid or f"uid-mlb-{name}")
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def _with_ls(h: Harness, projects: list[int], name: str = "demo") -> dict[str, Any]:
    h.kube.put_secret(NS, "ls-token", {"token": "tok-secret"})
    return _mlb(
        name,
        labelStudio={"url": "http://ls.example:8080", "apiTokenSecretRef": {"name": "ls-token"}, "projects": projects},
    )


def _cond(status: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    return next((c for c in (status or {}).get("conditions") or [] if c["type"] == ctype), None)


def _watch_event(h: Harness, kind: str, name: str, **status: Any) -> None:
    """What kopf's child watch hands the reconciler: the live object (a controller edit bumps only status)."""
    live = h.kube.objects[(kind, NS, name)]
    live["status"] = {**live.get("status", {}), **status}
    h.rec.observe_child(live)


# ---- children ------------------------------------------------------------------------------


def test_an_unchanged_child_is_not_applied_again_and_a_changed_one_is(harness):
    h = harness
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert sorted(h.kube.applies()) == ["Deployment/demo-server", "Service/demo"]
    h.kube.calls.clear()
    h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert h.kube.applies() == [] and h.kube.calls == [], "nothing changed: no request at all"
    # a new image changes only the Deployment's desired state: the Service stays skipped
    h.rec.reconcile(_mlb(image="lsml/runtime:v2"), Trigger.CHILD_EVENT)
    assert h.kube.applies() == ["Deployment/demo-server"]
    # someone edits a field of the Deployment our apply set, and the watch shows it: it is applied back
    h.kube.calls.clear()
    edited = h.kube.objects[("Deployment", NS, "demo-server")]
    edited["spec"]["replicas"] = 5
    edited["metadata"]["generation"] += 1
    h.rec.observe_child(edited)
    h.rec.reconcile(_mlb(image="lsml/runtime:v2"), Trigger.CHILD_EVENT)
    assert h.kube.applies() == ["Deployment/demo-server"]


def test_no_trigger_reapplies_a_child_the_watch_shows_holding_its_desired_state(harness):
    h = harness
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    for trigger in (Trigger.UPDATE, Trigger.RESUME, Trigger.RESYNC, Trigger.CHILD_EVENT):
        h.kube.calls.clear()
        h.rec.reconcile(_mlb(), trigger)
        assert h.kube.applies() == [], trigger
    # a hand edit of a label our apply set (no generation change), shown by the watch: the resync applies it back
    live = h.kube.objects[("Service", NS, "demo")]
    live["metadata"]["labels"]["app.kubernetes.io/instance"] = "someone-else"
    h.rec.observe_child(live)
    h.rec.reconcile(_mlb(), Trigger.RESYNC)
    assert h.kube.applies() == ["Service/demo"]
    assert h.kube.objects[("Service", NS, "demo")]["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"


def test_a_restarted_operator_writes_nothing_when_nothing_changed(harness):
    """The first pass after a restart compares the children its watches listed with the spec (their fingerprints)."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.rec.reconcile(_mlb(worker={"enabled": True}, redis={"managed": True}, storage={"size": "1Gi"}), Trigger.CREATE)
    status = h.kube.status_writes[-1]
    restarted = Harness(kube=h.kube)
    h.kube.calls.clear()
    body = _mlb(worker={"enabled": True}, redis={"managed": True}, storage={"size": "1Gi"})
    body["status"] = status
    restarted.rec.reconcile(body, Trigger.RESUME)
    writes = [c for c in h.kube.calls if c[0] not in ("get", "list")]
    assert writes == [], "nothing changed: no apply, no create, no status write"
    assert [c[1] for c in h.kube.calls] == ["Secret"], "one read: the Redis password Secret, which no watch follows"
    # the same restart after the spec changed meanwhile applies exactly the children that differ
    h.kube.calls.clear()
    again = Harness(kube=h.kube)
    body["spec"]["worker"]["replicas"] = 2
    again.rec.reconcile(body, Trigger.RESUME)
    assert again.kube.applies() == ["Deployment/demo-worker"]


def test_a_watch_event_that_overtakes_an_apply_answer_is_not_undone_by_it(harness):
    """A StatefulSet deleted by hand and recreated by our apply is made ready by its controller (on kwok, in
    milliseconds), and on a loaded operator that watch event can be handled before the apply's answer is read. The
    answer (no status yet) must not replace the newer body: no later event may come, and every pass, the resync's
    included, would report "generation not observed yet" for good (a loaded pass of issue 18 saw this for 11 min)."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.status_by_kind["StatefulSet"] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1}
    body = _mlb(redis={"managed": True})
    h.rec.reconcile(body, Trigger.CREATE)
    assert _cond(h.rec.reconcile(body, Trigger.CHILD_EVENT), "RedisReady")["status"] == "True"

    sts = ("StatefulSet", NS, "demo-redis")
    gone = h.kube.objects.pop(sts)
    assert h.rec.child_event("DELETED", gone) == (NS, "demo")
    h.kube.status_by_kind["StatefulSet"] = {}  # what the API server answers for a new StatefulSet
    h.kube.react_before_answer[sts] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1}
    first = h.rec.reconcile(body, Trigger.CHILD_EVENT)
    assert h.kube.applies()[-1:] == ["StatefulSet/demo-redis"] and sts in h.kube.objects
    # the pass that applied reports what its answer said; the pass the overtaking event asked for, and every later
    # one, what the watch showed
    assert _cond(first, "RedisReady")["reason"] == "RolloutPending"
    for trigger in (Trigger.CHILD_EVENT, Trigger.RESYNC):
        h.kube.calls.clear()
        status = h.rec.reconcile(body, trigger)
        assert _cond(status, "RedisReady")["status"] == "True", trigger
        assert "StatefulSet/demo-redis" not in h.kube.applies(), "the watch shows it holding its desired state"


def test_an_apply_refused_as_invalid_replaces_the_child(harness):
    h = harness
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    h.kube.calls.clear()
    # a hand edit apply cannot merge back (the API server answers 422 to the apply)
    live = h.kube.objects[("Service", NS, "demo")]
    live["spec"]["ports"][0]["port"] = 9999
    h.rec.observe_child(live)
    h.kube.invalid_once.add(("Service", NS, "demo"))
    h.rec.reconcile(_mlb(), Trigger.RESYNC)
    service_calls = [c for c in h.kube.calls if c[1] == "Service"]
    assert service_calls == [("apply", "Service", "demo"), ("delete", "Service", "demo"), ("apply", "Service", "demo")]
    assert ("Service", NS, "demo") in h.kube.objects


def test_an_invalid_apply_of_a_child_we_cannot_delete_is_raised(harness):
    h = harness
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    # the Service lost our owner reference meanwhile: not ours to delete, so the refusal stands
    h.kube.objects[("Service", NS, "demo")]["metadata"]["ownerReferences"] = []
    h.rec.observe_child(h.kube.objects[("Service", NS, "demo")])  # still recognised: its watch, and our cache
    h.kube.invalid_once.add(("Service", NS, "demo"))
    with pytest.raises(Invalid):
        h.rec.reconcile(_mlb(), Trigger.RESYNC)


def test_children_the_spec_dropped_are_deleted_when_the_policy_prunes(harness):
    h = harness
    h.rec.reconcile(_mlb(worker={"enabled": True}), Trigger.CREATE)
    assert ("Deployment", NS, "demo-worker") in h.kube.objects
    h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)  # no pruning on a child event
    assert ("Deployment", NS, "demo-worker") in h.kube.objects
    h.rec.reconcile(_mlb(), Trigger.UPDATE)
    assert ("Deployment", NS, "demo-worker") not in h.kube.objects
    assert "ChildDeleted" in h.reasons()


# ---- forget() ------------------------------------------------------------------------------


def test_forgetting_one_mlbackend_keeps_the_cache_of_another_whose_name_it_prefixes(harness):
    """Deleting ``a`` used to drop ``a-b``'s cache too (children matched by ``startswith``), so ``a-b``'s next
    child event re-read and re-applied every child."""
    h = harness
    h.rec.reconcile(_mlb("a"), Trigger.CREATE)
    h.rec.reconcile(_mlb("a-b"), Trigger.CREATE)
    h.rec.forget((NS, "a"))
    h.kube.calls.clear()
    h.rec.reconcile(_mlb("a-b"), Trigger.CHILD_EVENT)
    assert h.kube.calls == [], "a-b's children were still cached: nothing to read or apply"
    h.rec.reconcile(_mlb("a"), Trigger.CHILD_EVENT)
    assert sorted(c for c in h.kube.calls if c[0] == "get") == [
        ("get", "Deployment", "a-server"),
        ("get", "Service", "a"),
    ]
    assert h.kube.applies() == [], "a's own cache is gone: its children are read again (and found unchanged)"


# ---- status writes -------------------------------------------------------------------------


def test_status_is_written_only_when_it_changed(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert len(h.kube.status_writes) == 1
    h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert len(h.kube.status_writes) == 1, "same status: not written again"
    # progress text alone ("0/1 updated" -> "0/1 available") between full passes: not worth a write...
    _watch_event(h, "Deployment", "demo-server", updatedReplicas=1, replicas=1, availableReplicas=0)
    status = h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert _cond(status, "ServerAvailable")["reason"] == "ReplicasUnavailable"
    assert len(h.kube.status_writes) == 2, "the reason changed (RollingOut -> ReplicasUnavailable): written"
    _watch_event(h, "Deployment", "demo-server", replicas=1)  # nothing that changes the condition
    h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert len(h.kube.status_writes) == 2
    _watch_event(h, "Deployment", "demo-server", **AVAILABLE)
    status = h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert _cond(status, "Ready")["status"] == "True" and len(h.kube.status_writes) == 3
    assert h.reasons() == ["Ready"]


def test_a_message_only_change_waits_for_a_full_pass(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}
    h.rec.reconcile(_mlb(server={"replicas": 3}), Trigger.CREATE)
    writes = len(h.kube.status_writes)
    _watch_event(h, "Deployment", "demo-server", updatedReplicas=1)  # "0/3 updated" -> "1/3 updated"
    h.rec.reconcile(_mlb(server={"replicas": 3}), Trigger.CHILD_EVENT)
    assert len(h.kube.status_writes) == writes
    status = h.rec.reconcile(_mlb(server={"replicas": 3}), Trigger.RESYNC)
    assert len(h.kube.status_writes) == writes + 1
    assert _cond(status, "ServerAvailable")["message"] == "server: 1/3 replicas updated"


# ---- Label Studio --------------------------------------------------------------------------


def test_label_studio_failures_back_off_exponentially_and_the_timer_retries(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    mlb = _with_ls(h, [1])
    h.ls.down = True
    status = h.rec.reconcile(mlb, Trigger.CREATE)
    assert _cond(status, "LabelStudioRegistered")["reason"] == "LabelStudioUnreachable"
    assert h.reasons().count("LabelStudioUnreachable") == 1
    attempts = len(h.ls.calls)
    h.rec.reconcile(mlb, Trigger.CHILD_EVENT)
    assert len(h.ls.calls) == attempts, "within the backoff a child event does not call Label Studio"
    assert h.rec.tick_due(mlb) is None
    for delay in (5, 10, 20, 40, 40):  # base 5 s, doubling, capped at 40 s
        h.clock.now += delay - 0.5
        assert h.rec.tick_due(mlb) is None, delay
        h.clock.now += 0.5
        assert h.rec.tick_due(mlb) is Trigger.RETRY, delay
        h.rec.reconcile(mlb, Trigger.RETRY)
    assert h.reasons().count("LabelStudioUnreachable") == 1, "one Warning per outage, not per attempt"
    h.ls.down = False
    h.clock.now += 40
    status = h.rec.reconcile(mlb, Trigger.RETRY)
    assert _cond(status, "LabelStudioRegistered")["status"] == "True"
    assert h.ls.in_project(1) == [status["labelStudio"]["backends"][0]["id"]]
    assert h.rec.tick_due(mlb) is None, "success clears the backoff"


def test_the_timer_resyncs_after_resync_seconds(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert h.rec.tick_due(_mlb()) is None
    h.clock.now += h.settings.resync_seconds
    assert h.rec.tick_due(_mlb()) is Trigger.RESYNC


def test_a_project_removed_from_the_spec_is_unwired(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    status = h.rec.reconcile(_with_ls(h, [1, 2]), Trigger.CREATE)
    assert [b["project"] for b in status["labelStudio"]["backends"]] == [1, 2]
    gone = h.ls.in_project(2)
    status = h.rec.reconcile(_with_ls(h, [1]), Trigger.UPDATE)
    assert h.ls.in_project(2) == [] and len(h.ls.in_project(1)) == 1
    assert [b["project"] for b in status["labelStudio"]["backends"]] == [1]
    assert ("Normal", "Deregistered", f"deleted Label Studio ML backend {gone[0]}") in h.events


def test_removing_spec_label_studio_deletes_every_recorded_registration(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.rec.reconcile(_with_ls(h, [1, 2]), Trigger.CREATE)
    h.ls.down = True
    status = h.rec.reconcile(_mlb(), Trigger.UPDATE)
    assert _cond(status, "LabelStudioRegistered") is None
    assert status["labelStudio"]["backends"], "Label Studio down: the records stay for the retry"
    assert h.reasons().count("DeregistrationFailed") == 1
    h.ls.down = False
    h.clock.now += 5
    assert h.rec.tick_due(_mlb()) is Trigger.RETRY
    status = h.rec.reconcile(_mlb(), Trigger.RETRY)
    assert h.ls.backends == {} and status["labelStudio"] is None
    assert h.reasons().count("Deregistered") == 2
    assert "tok-secret" not in repr(h.events) + repr(h.kube.status_writes)


def test_what_a_pass_did_is_an_event_even_when_its_status_write_fails(harness):
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.kube.status_error = ServerError(500, "Internal Server Error")
    with pytest.raises(APIError):
        h.rec.reconcile(_with_ls(h, [1]), Trigger.CREATE)
    assert h.reasons() == ["Registered"], "the backend was registered; Ready was never written, so no Ready event"
    h.kube.status_error = None
    status = h.rec.reconcile(_with_ls(h, [1]), Trigger.CHILD_EVENT)
    assert _cond(status, "Ready")["status"] == "True" and h.reasons() == ["Registered", "Ready"]
    assert len(h.ls.in_project(1)) == 1, "the next pass adopts the registration instead of making a second"


def test_a_trigger_that_does_not_wait_marks_a_busy_object_and_the_running_pass_runs_again(harness):
    h = harness
    inside, release = threading.Event(), threading.Event()
    apply = h.kube.apply

    def slow_apply(obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        inside.set()
        assert release.wait(5)
        return apply(obj, **kwargs)

    h.kube.apply = slow_apply  # type: ignore[method-assign]
    h.rec.observe_parent("ADDED", _mlb(image="lsml/runtime:v2"))  # the body the re-run will use
    worker = threading.Thread(target=h.rec.reconcile, args=(_mlb(), Trigger.CREATE))
    worker.start()
    assert inside.wait(5)
    assert h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT) is None, "busy: returns at once"
    release.set()
    worker.join(5)
    images = [
        o["spec"]["template"]["spec"]["containers"][0]["image"]
        for (kind, _, _), o in h.kube.objects.items()
        if kind == "Deployment"
    ]
    assert images == ["lsml/runtime:v2"], "the re-run applied the latest body"


def test_unwiring_a_project_also_deletes_an_unrecorded_backend_with_our_url(harness):
    """A create whose answer never arrived (operator killed, or Label Studio committing it after the
    client's timeout) leaves a backend with our URL that no status records; unwiring the project
    must not leave it behind (seen as a flaky e2e: the project kept a backend after the patch)."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    status = h.rec.reconcile(_with_ls(h, [1, 2]), Trigger.CREATE)
    recorded = next(b for b in status["labelStudio"]["backends"] if b["project"] == 2)
    late = {"id": 99, "project": 2, "url": recorded["url"], "model_version": "v1"}
    h.ls.backends[99] = late  # committed by Label Studio after the pass that recorded the other one
    foreign = {"id": 98, "project": 2, "url": "http://someone-else:9090", "model_version": "v1"}
    h.ls.backends[98] = foreign
    status = h.rec.reconcile(_with_ls(h, [1]), Trigger.UPDATE)
    assert h.ls.in_project(2) == [98], "ours (recorded or not) deleted, a foreign backend kept"
    assert [b["project"] for b in status["labelStudio"]["backends"]] == [1]
    assert ("Normal", "Deregistered", "deleted Label Studio ML backend 99") in h.events


def test_deregistration_goes_where_the_operator_registered_not_where_status_says(harness):
    """Issue 22 item 11: status names Label Studio and the token Secret, but a status patch must not redirect the
    token. The record the operator wrote (annotation lsml.dev/label-studio) decides, in memory and after a restart."""
    from lsml_operator.reconcile import Reconciler
    from lsml_operator.reconcile.registration_record import ANNOTATION

    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    status = h.rec.reconcile(_with_ls(h, [1, 2]), Trigger.CREATE)
    record = h.kube.annotations[(NS, "demo")][ANNOTATION]
    assert "tok-secret" not in record and "http://ls.example:8080" in record
    h.kube.put_secret(NS, "other", {"token": "other-secret"})
    forged = {
        **status["labelStudio"],
        "url": "http://attacker.example",
        "apiTokenSecretRef": {"name": "other", "key": "token"},
        "backends": [{**b, "url": "http://victim.example"} for b in status["labelStudio"]["backends"]],
    }
    body = _mlb()  # spec.labelStudio removed, status patched, the resource being deleted
    body["status"] = {**status, "labelStudio": forged}
    body["metadata"]["annotations"] = {ANNOTATION: record}
    for rec in (h.rec, Reconciler(h.kube, h.settings, ls_factory=h.ls, events=lambda *a: None, clock=h.clock)):
        h.ls.connections.clear()
        outcome = rec.finalize(body)  # the second reconciler is a restarted operator: only the annotation knows
        assert outcome is not None and not outcome.error
        assert h.ls.connections == [("http://ls.example:8080", "tok-secret")]
    assert h.ls.backends == {}
    # no record (an operator before the fix registered it): nothing is sent anywhere, and the event says why
    del body["metadata"]["annotations"]
    h.ls.connections.clear()
    fresh = Reconciler(h.kube, h.settings, ls_factory=h.ls, events=lambda *a: None, clock=h.clock)
    assert fresh.finalize(body) is None and h.ls.connections == []


def test_a_token_secret_ending_in_a_newline_registers_and_one_with_a_newline_inside_is_refused_unshown(harness):
    """`kubectl create secret --from-file` ends a token in a newline: Label Studio gets the token without it. A
    token with a control character inside is no token Label Studio issues; as a header it failed in http.client
    with the token quoted into status, events and the log. It is refused, the value never shown."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    mlb = _with_ls(h, [1])
    h.kube.put_secret(NS, "ls-token", {"token": "tok-secret\n"})
    status = h.rec.reconcile(mlb, Trigger.CREATE)
    assert _cond(status, "LabelStudioRegistered")["status"] == "True"
    assert h.ls.connections == [("http://ls.example:8080", "tok-secret")]

    h.ls.connections.clear()
    h.kube.put_secret(NS, "ls-token", {"token": "tok-\r\nsecret"})
    status = h.rec.reconcile(mlb, Trigger.UPDATE)
    cond = _cond(status, "LabelStudioRegistered")
    assert cond["status"] == "False" and cond["reason"] == "SecretMissing", cond
    assert f"Secret {NS}/ls-token key 'token'" in cond["message"] and "no token" in cond["message"], cond
    assert h.ls.connections == []
    assert "tok-" not in repr(status) and not any("tok-" in repr(e) for e in h.events)  # no part of the value


def test_a_child_event_pass_after_a_restart_unwires_with_the_recorded_registration(harness):
    """A restarted operator knows where it registered only from the annotation on the MLBackend. The bodies that
    child events' passes use (the parent watch's, slimmed) dropped every annotation, so a pass that unwired Label
    Studio found no record: the backend stayed registered and its id left status, so nothing deleted it later."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    mlb = _with_ls(h, [1])
    body = copy.deepcopy(mlb)
    body["status"] = h.rec.reconcile(mlb, Trigger.CREATE)
    body["metadata"]["annotations"] = dict(h.kube.annotations[(NS, "demo")])
    assert len(h.ls.backends) == 1

    restarted = Harness(kube=h.kube, ls=h.ls)
    restarted.rec.observe_parent("ADDED", body)
    restarted.rec.reconcile(copy.deepcopy(body), Trigger.RESUME)
    # spec.labelStudio removed; the parent watch has the edit, and a child event's pass runs before kopf's update
    edited = copy.deepcopy(body)
    del edited["spec"]["labelStudio"]
    restarted.rec.observe_parent("MODIFIED", edited)
    status = restarted.rec.run_requested_pass((NS, "demo"))
    assert "RegistrationsLeft" not in restarted.reasons(), restarted.events
    assert h.ls.backends == {} and not ((status or {}).get("labelStudio") or {}).get("backends")


def test_finalize_waits_for_a_pass_that_is_registering_and_no_later_pass_registers_again(harness):
    """A child event's pass (the server just became available) was creating the Label Studio backend when the
    MLBackend was deleted: finalize listed the project before the create, found nothing and let the object go, and
    the backend stayed in Label Studio with a URL that no longer resolves."""
    h = harness
    mlb = _with_ls(h, [1])
    h.rec.reconcile(mlb, Trigger.CREATE)  # the server is not available yet: not registered
    assert h.ls.backends == {}
    inside, go, listed = threading.Event(), threading.Event(), threading.Event()
    ensure, ml_backends = h.ls.ensure_ml_backend, h.ls.ml_backends

    def slow_ensure(project: int, url: str, **kw: Any) -> Any:
        inside.set()
        assert go.wait(30)
        return ensure(project, url, **kw)

    def listing(project: int) -> Any:
        listed.set()
        return ml_backends(project)

    h.ls.ensure_ml_backend, h.ls.ml_backends = slow_ensure, listing  # type: ignore[method-assign]
    h.kube.status_by_kind["Deployment"] = AVAILABLE  # the watch shows the server available: a pass registers
    h.rec.observe_parent("ADDED", mlb)
    key = (NS, "demo")
    assert h.rec.request_pass(key)
    registering = threading.Thread(target=h.rec.run_requested_pass, args=(key,))
    registering.start()
    assert inside.wait(30)

    deleting = copy.deepcopy(mlb)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    h.rec.observe_parent("MODIFIED", deleting)
    finalizing = threading.Thread(target=lambda: (h.rec.finalize(deleting), h.rec.forget(key)))
    finalizing.start()
    # unfixed, finalize lists the project now, before the create; fixed, it waits for the pass (either way the
    # verdict below is the same: this wait only gives the unfixed code its chance to go first)
    listed.wait(1)
    go.set()
    registering.join(30)
    finalizing.join(30)
    assert not registering.is_alive() and not finalizing.is_alive()
    assert h.ls.backends == {}, "registered after finalize: left in Label Studio for good"
    # a timer's pass that read the body before the deletion, run after finalize: registers nothing
    h.rec.reconcile(mlb, Trigger.RESYNC)
    assert h.ls.backends == {}


def test_a_child_event_during_the_quality_poll_gets_its_pass(harness):
    """The quality poll holds the object's lock for up to the backend timeout; a child event meanwhile only marked
    the object, and nothing ran its pass: a Service deleted by hand stayed gone (and status Ready) until the resync."""
    h = harness
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    mlb = _mlb()
    h.rec.observe_parent("ADDED", mlb)
    h.rec.reconcile(mlb, Trigger.CREATE)
    service = ("Service", NS, "demo")
    asked: list[bool] = []

    def poll_while_the_service_is_deleted(mlb: dict[str, Any], old: dict[str, Any]) -> QualityResult:
        gone = h.kube.objects.pop(service)
        key = h.rec.child_event("DELETED", gone)
        assert key == (NS, "demo")
        asked.append(h.rec.request_pass(key))
        return QualityResult(None, [])

    h.rec.quality.run = poll_while_the_service_is_deleted  # type: ignore[method-assign]
    h.rec.poll_quality(mlb)
    assert asked == [False], "the poll held the lock: the event only marked the object"
    assert service in h.kube.objects, "the pass the event asked for ran when the poll let go"


def test_an_unexpected_error_reaches_status_without_its_text():
    """What registration shows of an error that is not Label Studio's own: http.client's ValueError quotes the
    invalid header, token included."""
    from lsml_operator.registration import _error_text

    message, unreachable = _error_text(ValueError("Invalid header value b'Token s3cret-token\\n'"))
    assert "s3cret" not in message and message.startswith("ValueError") and unreachable


def test_a_child_event_is_worth_a_pass_only_when_it_changed_what_the_operator_reads(harness):
    h = harness
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    key = (NS, "demo")
    live = h.kube.objects[("Deployment", NS, "demo-server")]
    # a controller's annotation and a new resourceVersion: nothing status or the skip-apply check reads
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    live["metadata"]["resourceVersion"] = "9999"
    h.rec.observe_child(live)
    assert h.rec.child_event("MODIFIED", live) is None
    # a rollout's progress: worth a pass
    live["status"] = {**live.get("status", {}), "updatedReplicas": 1}
    h.rec.observe_child(live)
    assert h.rec.child_event("MODIFIED", live) == key
    # the initial listing of a child not seen before (a restart): its MLBackend's resume pass reads it
    restarted = Harness(kube=h.kube)
    other = dict(h.kube.objects[("Service", NS, "demo")], metadata={**live["metadata"], "name": "demo-x"})
    other["kind"] = "Service"
    restarted.rec.observe_child(other)
    assert restarted.rec.child_event(None, other) is None
    # a deletion always is, and forgets the child (the next pass applies it again)
    assert h.rec.child_event("DELETED", live) == key
    assert h.rec.cache.observed(("Deployment", NS, "demo-server")) is None


def test_the_diagnosis_timer_backs_off_while_the_cause_stays_the_same(harness):
    """A thousand backends waiting on the same cause must not LIST their pods every timer tick."""
    h = harness
    h.kube.status_by_kind["Deployment"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    h.rec.reconcile(_mlb(), Trigger.CREATE)  # ReplicasUnavailable: worth reading the pods
    due = []
    for _ in range(16):  # 160 s of timer ticks
        due.append(h.rec.tick_due(_mlb()) is Trigger.DIAGNOSE)
        h.clock.now += h.settings.timer_seconds
    # the CREATE pass read the pods: again after 10 s, 20 s, 40 s, 80 s (8 x the tick, the cap): 5 reads in 160 s
    # instead of 17
    assert [i for i, d in enumerate(due) if d] == [1, 3, 7, 15]


def test_a_diagnosis_is_not_read_again_because_it_renamed_the_reason(harness):
    """The diagnosis backoff compares the causes the last status shows; a diagnosis itself renames them (the plain
    ReplicasUnavailable becomes ImagePullFailed), which looked like a new cause, so every diagnosis was followed by
    a second LIST of the pods at the next tick."""
    h = harness
    h.kube.status_by_kind["Deployment"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    h.kube.pods = [
        {
            "metadata": {"name": "demo-server-1", "labels": {"app.kubernetes.io/component": "server"}},
            "status": {
                "containerStatuses": [
                    {"name": "server", "image": "x:1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ]
            },
        }
    ]

    def pod_lists() -> int:
        return sum(1 for c in h.kube.calls if c[:2] == ("list", "Pod"))

    status = h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert {c["type"]: c["reason"] for c in status["conditions"]}["ServerAvailable"] == "ImagePullFailed"
    assert pod_lists() == 1
    due = []
    for _ in range(16):  # 160 s of timer ticks, each running the pass it asks for
        trigger = h.rec.tick_due(_mlb())
        due.append(trigger is Trigger.DIAGNOSE)
        if trigger is not None:
            h.rec.reconcile(_mlb(), trigger)
        h.clock.now += h.settings.timer_seconds
    # the CREATE pass read the pods at 0 s: again after 10 s, 20 s, 40 s, 80 s, never at the very next tick
    assert [i for i, d in enumerate(due) if d] == [1, 3, 7, 15]
    assert pod_lists() == 5
    # a pass that reads no pods and finds a new plain reason (the image pulled, the rollout not done) is seen at once
    h.kube.pods = []
    h.kube.status_by_kind["Deployment"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}
    h.rec.reconcile(_mlb(), Trigger.CHILD_EVENT)
    assert h.rec.tick_due(_mlb()) is Trigger.DIAGNOSE


def test_child_events_queue_one_pass_per_mlbackend_however_many_arrive(harness):
    h = harness
    mlb = _mlb()
    h.rec.observe_parent("ADDED", mlb)
    h.rec.reconcile(mlb, Trigger.CREATE)
    key = (NS, "demo")
    assert h.rec.request_pass(key) is True
    assert [h.rec.request_pass(key) for _ in range(5)] == [False] * 5, "queued once: it will see every event"
    h.rec.run_requested_pass(key)
    assert h.rec.request_pass(key) is True, "ran: the next event queues a new pass"
    h.rec.run_requested_pass(key)
    # while a pass runs, an event marks it to run once more instead of queueing another
    lock = h.rec._lock(key)
    with lock:
        assert h.rec.request_pass(key) is False
    assert key in h.rec._dirty


def test_a_restart_reads_a_child_its_watches_have_not_listed_yet_and_writes_nothing(harness):
    h = harness
    body = _mlb(worker={"enabled": True})
    h.rec.reconcile(body, Trigger.CREATE)
    body["status"] = h.kube.status_writes[-1]
    restarted = Harness(kube=h.kube)
    restarted.rec.cache.forget((NS, "demo"))  # the first pass runs before the watches listed its children
    h.kube.calls.clear()
    restarted.rec.reconcile(body, Trigger.RESUME)
    assert sorted(h.kube.calls) == [
        ("get", "Deployment", "demo-server"),
        ("get", "Deployment", "demo-worker"),
        ("get", "Service", "demo"),
    ], "one read of each, no write"


def test_a_new_mlbackend_creates_each_child_with_one_request_and_reads_nothing(harness):
    """CREATE: the names are expected free, so each first write is a create-only apply (no GET before it), and
    the Redis password Secret is created with no look first."""
    h = harness
    h.rec.reconcile(_mlb(worker={"enabled": True}, redis={"managed": True}, storage={"size": "1Gi"}), Trigger.CREATE)
    reads = [c for c in h.kube.calls if c[0] in ("get", "list")]
    assert reads == [], reads
    assert [c for c in h.kube.calls if c[1] == "Secret"] == [("create", "Secret", "demo-redis-auth")]
    assert sorted(h.kube.applies()) == sorted(f"{kind}/{name}" for kind, _, name in h.kube.objects if kind != "Secret")


def test_a_new_mlbackend_whose_child_name_is_taken_looks_at_it_and_leaves_a_foreign_one_alone(harness):
    """The create-only apply of a taken name is refused (409) and changes nothing; the object is then read: one of
    another owner is left as it was, one of ours (a CREATE pass run again after a restart) is kept without a write."""
    h = harness
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo", "namespace": NS}, "spec": {"x": 1}}
    h.kube.objects[("Service", NS, "demo")] = copy.deepcopy(foreign)
    status = h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert h.kube.objects[("Service", NS, "demo")] == foreign, "untouched"
    assert [c for c in h.kube.calls if c[1] == "Service"] == [("apply", "Service", "demo"), ("get", "Service", "demo")]
    assert any(c["reason"] == "ForeignObject" and "ns1/demo" in c["message"] for c in status["conditions"]), status
    # the same CREATE run again by a restarted operator finds its own children: one refused apply and one read each
    del h.kube.objects[("Service", NS, "demo")]
    h.rec.reconcile(_mlb(), Trigger.CREATE)
    before = copy.deepcopy(h.kube.objects)
    restarted = Harness(kube=h.kube)
    restarted.rec.cache.forget((NS, "demo"))  # the pass runs before the watches listed its children
    h.kube.calls.clear()
    restarted.rec.reconcile(_mlb(), Trigger.CREATE)
    assert h.kube.objects == before, "no child changed"
    assert sorted(c for c in h.kube.calls if c[1] != "MLBackend") == [
        ("apply", "Deployment", "demo-server"),
        ("apply", "Service", "demo"),
        ("get", "Deployment", "demo-server"),
        ("get", "Service", "demo"),
    ]


def test_a_create_only_apply_refused_by_admission_on_a_taken_name_still_finds_the_owner(harness):
    """On a taken name the API server runs admission on the merged object before the resourceVersion check: a
    webhook's refusal (any status, not 409) answers instead. Nothing was written; the owner check decides."""
    h = harness
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo", "namespace": NS}, "spec": {"x": 1}}
    h.kube.objects[("Service", NS, "demo")] = copy.deepcopy(foreign)
    apply = h.kube.apply

    def webhook_on_update(obj: dict[str, Any], *, only_if_absent: bool = False) -> dict[str, Any]:
        if only_if_absent and (obj["kind"], NS, obj["metadata"]["name"]) in h.kube.objects:
            h.kube.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
            raise ServerError(500, "Internal error: failed calling webhook")
        return apply(obj, only_if_absent=only_if_absent)

    h.kube.apply = webhook_on_update  # type: ignore[method-assign]
    status = h.rec.reconcile(_mlb(), Trigger.CREATE)
    assert [c for c in h.kube.calls if c[1] == "Service"] == [("apply", "Service", "demo"), ("get", "Service", "demo")]
    assert h.kube.objects[("Service", NS, "demo")] == foreign
    assert any(c["reason"] == "ForeignObject" and "ns1/demo" in c["message"] for c in status["conditions"]), status
    assert ("Deployment", NS, "demo-server") in h.kube.objects, "the other children are still created"
