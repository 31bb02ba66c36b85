"""The quality poll: the operator reads which version each project serves, and its scores, from the backend's
own /versions (a real lsml server on loopback, with Basic auth) and writes status.served / status.score only
when they change, with one CandidateHeld event per candidate the gate held. The API server is the in-memory
FakeKube (tests/operator/test_quality_cluster.py has the real one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from lsml_operator.backend_api import BackendClient, parse_report
from lsml_operator.reconcile import Trigger
from lsml_operator.reconcile.quality_status import HeldCandidate, ServedVersion, held_events, quality_status
from lsml_operator.settings import OperatorSettings
from tests.fixtures.mlbackend import example, with_identity
from tests.fixtures.operator_fakes import AVAILABLE, Harness
from tests.fixtures.versions_backend import VersionsBackend, hold, publish

pytestmark = pytest.mark.unit

NS = "ns1"
PASSWORD = "pw-quality-7c1e"


@pytest.fixture
def backend(tmp_path):
    with VersionsBackend(tmp_path / "models", "labelstudio", PASSWORD).running() as b:
        yield b


def _mlb(**spec: Any) -> dict[str, Any]:
    body = with_identity(example("mlbackend-minimal.yaml"), namespace=NS, uid="uid-quality")
    body["metadata"]["name"] = "demo"
    body["spec"]["basicAuth"] = {"secretName": "basic", "usernameKey": "user", "passwordKey": "password"}
    body["spec"].update(spec)
    return body


def _harness(backend: VersionsBackend, password: str = PASSWORD, **spec: Any) -> tuple[Harness, dict[str, Any]]:
    h = Harness(OperatorSettings(backend_urls={f"{NS}/demo": backend.url}, backend_timeout=5))
    h.kube.put_secret(NS, "basic", {"user": "labelstudio", "password": password})
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    mlb = _mlb(**spec)
    h.rec.reconcile(mlb, Trigger.CREATE)  # the server Deployment is available: ServerAvailable=True
    return h, mlb


def _status_writes(h: Harness) -> list[dict[str, Any]]:
    return [w for w in h.kube.status_writes if "served" in w or "score" in w]


def test_served_versions_and_scores_are_written_once_and_a_held_candidate_announced_once(backend):
    publish(backend.store, "3", {"scores": {"accuracy": 0.9, "macro_f1": 0.85}})
    publish(backend.store, "12", {"scores": {"accuracy": 0.5}})
    h, mlb = _harness(backend)

    assert h.rec.poll_quality(mlb) is True
    assert _status_writes(h) == [
        {
            "served": [
                {"project": "3", "version": "v1", "scores": {"accuracy": 0.9, "macro_f1": 0.85}},
                {"project": "12", "version": "v1", "scores": {"accuracy": 0.5}},
            ],
            "score": "accuracy=0.900",
        }
    ]
    assert "CandidateHeld" not in h.reasons()
    # nothing changed: no write, however many polls, and a reconcile in between keeps what the poll wrote
    h.rec.reconcile(mlb, Trigger.RESYNC)
    assert h.rec.poll_quality(mlb) is False and h.rec.poll_quality(mlb) is False
    assert len(_status_writes(h)) == 1

    hold(backend.store, "3", 0.4, tolerance=0.05)  # v2 of project 3: the gate kept it
    assert h.rec.poll_quality(mlb) is True
    served = _status_writes(h)[-1]["served"]
    assert served[0] == {
        "project": "3",
        "version": "v1",
        "scores": {"accuracy": 0.9, "macro_f1": 0.85},
        "heldCandidate": {
            "version": "v2",
            "metric": "accuracy",
            "score": 0.4,
            "servedVersion": "v1",
            "servedScore": 0.9,
            "tolerance": 0.05,
        },
    }
    held = [(t, m) for t, r, m in h.events if r == "CandidateHeld"]
    assert held == [
        (
            "Warning",
            "project 3: v2 kept as a candidate, not served: accuracy 0.4000 is below v1's 0.9000 minus tolerance "
            "0.05 (label-studio-ml activate serves it)",
        )
    ]
    for _ in range(3):
        h.rec.poll_quality(mlb)
    assert len([r for r in h.reasons() if r == "CandidateHeld"]) == 1, "once per candidate, not per poll"

    backend.store.activate("3", "v2", pin=False)  # served by hand: no longer held, the column follows
    assert h.rec.poll_quality(mlb) is True
    assert _status_writes(h)[-1] == {
        "served": [
            {"project": "3", "version": "v2", "scores": {"accuracy": 0.4}},
            {"project": "12", "version": "v1", "scores": {"accuracy": 0.5}},
        ],
        "score": "accuracy=0.400",
    }
    everything = json.dumps([h.kube.status_writes, h.events])
    assert PASSWORD not in everything


def test_the_gate_metric_is_the_column_when_the_spec_names_one(backend):
    publish(backend.store, "3", {"scores": {"accuracy": 0.9, "macro_f1": 0.85}})
    h, mlb = _harness(backend, model={"qualityGate": {"metric": "macro_f1", "tolerance": 0.02}})
    h.rec.poll_quality(mlb)
    assert _status_writes(h)[-1]["score"] == "macro_f1=0.850"


def test_wrong_credentials_leave_status_as_it_was_and_say_why_once(backend, caplog):
    publish(backend.store, "3", {"scores": {"accuracy": 0.9}})
    h, mlb = _harness(backend, password="not-the-password")
    with caplog.at_level("INFO", logger="lsml_operator"):
        assert h.rec.poll_quality(mlb) is False and h.rec.poll_quality(mlb) is False
    assert _status_writes(h) == []
    said = [r.getMessage() for r in caplog.records if "model quality not read" in r.getMessage()]
    assert len(said) == 1 and "HTTP 401" in said[0] and "not-the-password" not in caplog.text


def test_no_poll_while_the_server_is_not_available(backend):
    calls: list[str] = []

    def factory(url: str, auth: Any, timeout: float) -> BackendClient:
        calls.append(url)
        return BackendClient(url, auth, timeout)

    h = Harness(OperatorSettings(backend_urls={f"{NS}/demo": backend.url}))
    h.rec.quality.client_factory = factory
    h.kube.put_secret(NS, "basic", {"user": "labelstudio", "password": PASSWORD})
    mlb = _mlb()
    h.rec.reconcile(mlb, Trigger.CREATE)  # the Deployment has no available replica yet
    assert h.rec.poll_quality(mlb) is False and calls == []
    h.kube.status_by_kind["Deployment"] = AVAILABLE
    h.rec.reconcile(mlb, Trigger.RESYNC)
    h.rec.poll_quality(mlb)
    assert calls == [backend.url]


def test_a_report_names_only_the_newest_candidate_newer_than_the_served_version():
    report = {
        "current": "v3",
        "details": [
            {"name": "v1", "number": 1, "candidate": True, "scores": {"accuracy": 0.1}},
            {"name": "v3", "number": 3, "scores": {"accuracy": 0.8, "bad": float("nan"), "flag": True}},
            {"name": "v4", "number": 4, "candidate": True, "gate_check": {"metric": "accuracy", "score": 0.2}},
            {"name": "v5", "number": 5, "candidate": True, "gate_check": "not an object"},
        ],
    }
    got = parse_report("7", report)
    assert got == ServedVersion("7", "v3", {"accuracy": 0.8}, HeldCandidate("v5"))
    assert parse_report("7", {"current": None, "details": []}) == ServedVersion("7", None, {}, None)


def test_the_column_is_absent_without_scores_and_a_candidate_already_in_status_is_not_announced():
    assert quality_status([ServedVersion("3", "v1")]) == {"served": [{"project": "3", "version": "v1"}], "score": None}
    held = quality_status([ServedVersion("3", "v1", {"accuracy": 0.9}, HeldCandidate("v2", "accuracy", None))])
    assert held_events(held, held) == []
    (event,) = held_events({}, held)
    assert "v2 kept as a candidate, not served: it has no accuracy score" in event.message


def test_the_basic_credentials_are_read_once_per_resync_period_not_on_every_poll(backend):
    publish(backend.store, "3", {"scores": {"accuracy": 0.9}})
    h, mlb = _harness(backend)
    reads: list[str] = []
    secret_value = h.kube.secret_value

    def counting(namespace: str, name: str, key: str) -> tuple[str, str]:
        reads.append(key)
        return secret_value(namespace, name, key)

    h.kube.secret_value = counting  # type: ignore[method-assign]
    for _ in range(3):
        h.rec.poll_quality(mlb)
    assert reads == ["user", "password"], "three polls, one read of the Secret's two keys"
    h.clock.now += h.settings.resync_seconds
    h.rec.poll_quality(mlb)
    assert reads == ["user", "password"] * 2, "read again once the resync period is over"


@pytest.mark.parametrize(
    ("quality", "timer", "ticks_between_polls"),
    [(30.0, 10.0, 3), (2.0, 2.0, 1), (15.0, 10.0, 1), (25.0, 10.0, 2), (26.0, 10.0, 3), (10.0, 30.0, 1)],
)
def test_the_poll_rides_on_the_timer_every_quality_period_rounded_to_the_tick(quality, timer, ticks_between_polls):
    settings = OperatorSettings(quality_seconds=quality, timer_seconds=timer)
    h = Harness(settings)
    tick = settings.timer_interval()
    assert tick == min(quality, timer), "the timer wakes up for whichever comes first"
    key = (NS, "demo")
    # kopf counts each interval from the end of the last handler: the wake-ups drift a little later every time
    polls = []
    for n in range(12):
        h.clock.now = n * (tick + 0.01)
        if h.rec.quality.begin(key, tick):
            polls.append(n)
            h.rec.quality.end(key)
    assert polls[0] == 0, "the first tick polls"
    assert [b - a for a, b in zip(polls, polls[1:], strict=False)] == [ticks_between_polls] * (len(polls) - 1)


def test_no_poll_is_due_when_the_poll_is_off_and_a_forgotten_backend_polls_at_once():
    off = Harness(OperatorSettings(quality_seconds=0, timer_seconds=10))
    assert off.settings.timer_interval() == 10 and off.settings.timer_first_delay() == 10
    assert not off.rec.quality.begin((NS, "demo"), 10)
    on = Harness(OperatorSettings(quality_seconds=30, timer_seconds=10))
    assert on.settings.timer_first_delay() == 5.0, "the first poll within 5 s of the MLBackend's appearance"
    assert on.rec.quality.begin((NS, "demo"), 10)
    on.rec.quality.end((NS, "demo"))
    assert not on.rec.quality.begin((NS, "demo"), 10), "polled this tick already"
    on.rec.forget((NS, "demo"))
    assert on.rec.quality.begin((NS, "demo"), 10), "a deleted and re-created MLBackend is not held to the old period"


def test_one_poll_at_a_time_per_backend_however_long_it_takes():
    """The timer does not wait for the poll: a backend whose poll is still queued or waiting for its answer gets no
    second one when its period comes round again, and gets the next as soon as the first has ended."""
    h = Harness(OperatorSettings(quality_seconds=30, timer_seconds=10))
    key, other = (NS, "demo"), (NS, "other")
    assert h.rec.quality.begin(key, 10)
    for _ in range(5):  # five periods while the first poll has not ended
        h.clock.now += 30
        assert not h.rec.quality.begin(key, 10)
    assert h.rec.quality.begin(other, 10), "another backend's poll is not held back by this one"
    h.rec.quality.end(key)
    assert h.rec.quality.begin(key, 10), "due since long ago: starts at the first tick after the end"


def _end_future(outcome: str, error: Exception, done: Callable[[asyncio.Future], None]) -> None:
    """Hands `done` a future that failed with `error` or was cancelled, as a detached pass or poll ends."""

    async def finish() -> None:
        future = asyncio.get_running_loop().create_future()
        if outcome == "failed":
            future.set_exception(error)
        else:
            future.cancel()
        done(future)

    asyncio.run(finish())


def test_a_poll_that_failed_or_was_cancelled_ends_and_a_failure_is_logged(caplog):
    from lsml_operator.main import _poll_ended

    h = Harness(OperatorSettings(quality_seconds=30, timer_seconds=10))
    key = (NS, "demo")

    for outcome in ("failed", "cancelled"):
        assert h.rec.quality.begin(key, 10)
        with caplog.at_level("WARNING", logger="lsml_operator"):
            _end_future(outcome, RuntimeError("status write refused"), lambda f: _poll_ended(h.rec, key, f))
        h.clock.now += 30
        assert h.rec.quality.begin(key, 10), f"a {outcome} poll ended: the next starts when due"
        h.rec.quality.end(key)
        h.clock.now += 30
    assert [r.getMessage() for r in caplog.records if "model quality" in r.getMessage()] == [
        "model quality of ns1/demo not written: status write refused"
    ]


def test_a_child_events_pass_that_failed_is_logged_and_one_cancelled_is_not(caplog):
    """The child event's pass is detached as the poll is: a cancelled one (the operator stopping) must not raise
    inside its done-callback."""
    from lsml_operator.main import _log_failed_pass

    with caplog.at_level("WARNING", logger="lsml_operator"):
        for outcome in ("failed", "cancelled"):
            _end_future(outcome, RuntimeError("conflict"), _log_failed_pass)
    assert [r.getMessage() for r in caplog.records if "child event" in r.getMessage()] == [
        "a pass after a child event failed: conflict"
    ]
