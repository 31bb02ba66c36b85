"""Catch-up: train on annotations whose webhook Label Studio never delivered.

Why: Label Studio 1.23 posts each annotation event once, with a 1 s timeout
and no retry. An event that arrives while the backend restarts, while its
Redis is down (the server answers 503) or while a pod rolls is gone, and
nothing says so. Every `LSML_CATCHUP_INTERVAL` seconds a server thread
(`CatchupRunner`) checks each project that has a published version:

1. the watermark (`lsml.watermark`): catch-up's own, advanced by earlier
   checks (state key ``catchup``), while it belongs to the newest version,
   else the one that version was published with;
2. one request for Label Studio's count of live annotations, one for its
   newest task update (the check's mark), and the tasks updated after the
   watermark (`LabelStudioClient.iter_tasks_updated_after`, paged), so a quiet
   project costs three small requests;
3. every annotation changed after the watermark that it does not account for
   becomes the event Label Studio would have sent (`ANNOTATION_CREATED` /
   `ANNOTATION_UPDATED`, with the annotation and its task); when the count
   says accounted annotations are gone, the project's annotation ids are read
   once and the missing ones become one `ANNOTATIONS_DELETED`;
4. those events go through the queue's `submit`, the webhook's own path, as
   one request (the newest event, the earlier ones in `coalesced`, as coalesced
   webhooks would be), folded into a training already queued if there is one; more than
   `MAX_EVENTS` become one `START_TRAINING` (a full retrain) instead. Their
   payloads carry ``"catchup": true``.
5. the watermark, with what was handed over, is saved for the next check; the
   training's version records the same (`lsml.training.job`).

A project's first check after its first version (or after a version that was
published without a complete watermark) reads every annotation id once and
takes Label Studio's state as the baseline: catch-up covers what happens from
then on.

Label Studio access: the project's credential (`lsml.credentials.resolve`):
`LABEL_STUDIO_API_KEY` only to `LABEL_STUDIO_URL`, a `/setup` token only to
the host it came with. A project without a URL and token is skipped, and with
no credential at all catch-up reports itself off (`/health`, `/metrics`).

One check per project at a time across processes: a Redis lease
(``lsml:catchup:<queue>:<project>``, SET NX) with Redis, which also spaces
checks by the interval whichever server process makes them; an `flock` on
``<MODEL_DIR>/.lsml/catchup-<project>.lock`` without.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from lsml import credentials
from lsml.settings import Settings
from lsml.training.queue import TrainingQueue, TrainingRequest
from lsml.watermark import STATE_KEY, Watermark, config_hash, parse_time, training_base

log = logging.getLogger(__name__)

#: Missed events handed over one by one up to this many; beyond, one START_TRAINING (coalescing keeps 1000).
MAX_EVENTS = 1000
#: Seconds below the check's mark that stay in `seen`: an annotation saved just before the mark but committed
#: after the check's query is found by the next check instead of falling below the watermark.
CLOCK_MARGIN = 5.0
#: Tasks per page of the changed-since query.
PAGE_SIZE = 100

#: Seconds after a process starts before its first check (at most the interval), and between checks while
#: the model class is still loading.
STARTUP_DELAY = 1.0
NOT_LOADED = "the model class is not loaded yet"

OFF, ON = "off", "on"


@dataclass
class CheckResult:
    """What one check of one project did."""

    project: str
    outcome: str  # "baseline" | "current" | "recovered" | "skipped" | "error"
    events: dict[str, int] = field(default_factory=dict)  # event -> count handed to the queue
    job: str | None = None
    reason: str | None = None


def status(settings: Settings, state: Any = None, projects: list[str] | None = None) -> dict:
    """`/health`'s `catchup`: on or off, and why off."""
    if settings.catchup_interval <= 0:
        return {"status": OFF, "reason": "LSML_CATCHUP_INTERVAL is 0", "interval": 0}
    if settings.label_studio_url and settings.label_studio_api_key:
        return {"status": ON, "interval": settings.catchup_interval}
    if state is not None:
        for project in projects or []:
            try:
                credential = credentials.resolve(settings, state.get(project, credentials.STATE_KEY))
            except Exception:  # noqa: BLE001 - state down: say what is configured
                break
            if credential.url and credential.token:
                return {"status": ON, "interval": settings.catchup_interval}
    return {
        "status": OFF,
        "reason": "no Label Studio credentials: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY "
        "(or connect the backend from Label Studio: its /setup sends a URL and token for its project)",
        "interval": settings.catchup_interval,
    }


class Checker:
    """One check of one project (see the module doc); `client_for(credential)` builds a Label Studio client."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        state: Any,
        queue: TrainingQueue,
        train_events: Callable[[], tuple[str, ...]],
        client_for: Callable[[credentials.Credential], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.queue = queue
        self.train_events = train_events
        self.client_for = client_for or _client

    def skip_reason(self, project: str) -> str | None:
        """Why `project` cannot be checked now (before any lease is taken), or None."""
        if not str(project).isdigit():
            return "not a Label Studio project id"
        if self.store.latest(project) is None:
            return "no published version"
        credential = credentials.resolve(self.settings, self.state.get(project, credentials.STATE_KEY))
        if not credential.url or not credential.token:
            return "no Label Studio URL and token for this project"
        if not self.train_events():  # the model class is still importing: what it trains on is unknown
            return NOT_LOADED
        return None

    def check(self, project: str) -> CheckResult:
        reason = self.skip_reason(project)
        if reason is not None:
            return CheckResult(project, "skipped", reason=reason)
        version = self.store.latest(project)
        credential = credentials.resolve(self.settings, self.state.get(project, credentials.STATE_KEY))
        client = self.client_for(credential)
        try:
            return self._check(client, project, version)
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def _check(self, client: Any, project: str, version: Any) -> CheckResult:
        pid = int(project)
        watermark = training_base(self.state, project, version)
        pending = self._pending(project, version.name)
        if pending is not None and pending[1] is None:  # its training was lost: find those changes again
            watermark = Watermark.from_dict(pending[2])
            pending = None
        summary = client.project_summary(pid)
        count = summary.get("total_annotations_number")
        label_config = summary.get("label_config") if isinstance(summary.get("label_config"), str) else None
        mark = client.newest_task_update(pid)
        if not watermark.complete or watermark.updated_at is None:
            tasks = list(client.iter_tasks_updated_after(pid, None, PAGE_SIZE))
            live = {a["id"]: a for t in tasks for a in t.get("annotations") or [] if not a.get("was_cancelled")}
            watermark = Watermark(ids=set(live), complete=True, config=watermark.config)
            for annotation in live.values():
                watermark.account(annotation)  # `_save` keeps only those changed after the mark (less the margin)
            self._save(project, version.name, watermark, mark, label_config)
            log.info("project %s: catch-up baseline at %s (%d annotations)", project, mark, len(live))
            return CheckResult(project, "baseline")
        changed = list(client.iter_tasks_updated_after(pid, watermark.updated_at, PAGE_SIZE))
        events = self._missed(pid, changed, watermark)
        expected = set(watermark.ids)
        for _event, payload in events:
            annotation = payload["annotation"]
            (expected.discard if annotation.get("was_cancelled") else expected.add)(annotation["id"])
        if isinstance(count, int) and count != len(expected):
            # accounted annotations are gone (or some were never seen): read every id once and compare
            everything = list(client.iter_tasks_updated_after(pid, None, PAGE_SIZE))
            live_ids = {a["id"] for t in everything for a in t.get("annotations") or [] if not a.get("was_cancelled")}
            events = self._missed(pid, everything, watermark, also_unknown=True)
            deleted = sorted(watermark.ids - live_ids)
            if deleted:
                payload = {"annotations": [{"id": i} for i in deleted], "project": {"id": pid}, "catchup": True}
                events.append(("ANNOTATIONS_DELETED", payload))
        if not events:
            self._save(project, version.name, watermark, mark, label_config, pending)
            log.debug("project %s: catch-up: %s accounts for every annotation", project, version.name)
            return CheckResult(project, "current")
        before = watermark.to_dict()
        if pending is not None:  # an earlier recovery still waits: a loss of either finds both again
            before = pending[2]
        result = self._hand_over(project, pid, events, watermark, label_config)
        self._save(project, version.name, watermark, mark, label_config, (result.job, "queued", before))
        return result

    def _pending(self, project: str, version: str) -> tuple[str, str | None, dict] | None:
        """`(job, status, watermark before it)` of the recovery catch-up queued for `version` while that job may
        still train (status None: the queue does not know it, e.g. the embedded queue of a restarted server);
        None when there is none or it ended (its version, or its failure, accounts for it)."""
        stored = self.state.get(project, STATE_KEY)
        if not isinstance(stored, dict) or stored.get("version") != version or not isinstance(stored.get("job"), str):
            return None
        job, before = stored["job"], stored.get("before")
        found = self.queue.status(job)
        if found is None:
            log.warning(
                "project %s: catch-up's training %s was lost (restart?): looking for its changes again", project, job
            )
            return job, None, before if isinstance(before, dict) else {}
        if found.get("status") in ("queued", "started"):
            return job, str(found.get("status")), before if isinstance(before, dict) else {}
        return None

    def _missed(self, pid: int, tasks: list[dict], watermark: Watermark, also_unknown: bool = False) -> list:
        """The events Label Studio would have sent for annotations `watermark` does not account for, oldest first."""
        found = []
        for task in tasks:
            bare = {k: v for k, v in task.items() if k not in ("annotations", "predictions", "drafts")}
            for annotation in task.get("annotations") or []:
                ident = annotation.get("id")
                unknown = also_unknown and not annotation.get("was_cancelled") and ident not in watermark.ids
                if not (unknown or watermark.missed(annotation)):
                    continue
                event = "ANNOTATION_UPDATED" if ident in watermark.ids else "ANNOTATION_CREATED"
                payload = {"annotation": annotation, "task": bare, "project": {"id": pid}, "catchup": True}
                found.append((annotation.get("updated_at") or "", ident, event, payload))
        found.sort(key=lambda item: (parse_time(item[0]) or parse_time("1970-01-01T00:00:00Z"), item[1]))
        return [(event, payload) for _stamp, _id, event, payload in found]

    def _hand_over(
        self, project: str, pid: int, events: list, watermark: Watermark, label_config: str | None
    ) -> CheckResult:
        """Submit the missed events as the webhook would (one coalesced training), and account for them."""
        allowed = set(self.train_events())
        wanted = [(event, payload) for event, payload in events if event in allowed]
        counts: dict[str, int] = {}
        job = None
        if len(wanted) > MAX_EVENTS and "START_TRAINING" in allowed:
            seen = {
                str(p["annotation"]["id"]): p["annotation"].get("updated_at") for e, p in wanted if "annotation" in p
            }
            deleted = [a["id"] for e, p in wanted if e == "ANNOTATIONS_DELETED" for a in p["annotations"]]
            payload = {"project": {"id": pid}, "catchup": {"seen": seen, "deleted": deleted, "events": len(wanted)}}
            job = self.queue.submit(TrainingRequest(project, "START_TRAINING", payload, label_config))
            counts["START_TRAINING"] = 1
        elif wanted:
            # one request, as a burst of webhooks coalesced into one queued job would be: the newest event with
            # the earlier ones in `coalesced` (oldest first); submitting them one by one could split them in two
            # trainings when the first starts before the last is submitted
            *earlier, (event, payload) = wanted
            coalesced = [{"event": e, "data": p} for e, p in earlier]
            job = self.queue.submit(TrainingRequest(project, event, payload, label_config, coalesced=coalesced))
            for event, _payload in wanted:
                counts[event] = counts.get(event, 0) + 1
        for event, payload in events:  # an event the model does not train on is accounted for, as a webhook's would be
            watermark.fold_event(event, payload)
        log.warning(
            "project %s: catch-up found %d annotation change(s) Label Studio's webhooks never delivered: %s (job %s)",
            project,
            len(events),
            ", ".join(f"{n} {e}" for e, n in sorted(counts.items())) or "none the model trains on",
            job,
        )
        return CheckResult(project, "recovered", events=counts, job=job)

    def _save(
        self,
        project: str,
        version: str,
        watermark: Watermark,
        mark: str | None,
        label_config: str | None,
        pending: tuple[str | None, str | None, dict] | None = None,
    ) -> None:
        stamp = parse_time(mark)
        if stamp is not None:
            watermark.advance((stamp - timedelta(seconds=CLOCK_MARGIN)).isoformat().replace("+00:00", "Z"))
        if label_config:
            watermark.config = config_hash(label_config)
        saved: dict[str, Any] = {"version": version, "watermark": watermark.to_dict(), "checked_at": time.time()}
        if pending is not None and pending[0]:
            saved.update(job=pending[0], before=pending[2])  # kept until that training ends (`_pending`)
        self.state.set(project, STATE_KEY, saved)


def _client(credential: credentials.Credential) -> Any:
    from lsml.labelstudio import connect

    # connect applies the origin rule: the credential's token goes only to its own URL's origin
    return connect(str(credential.url), credential, timeout=30, retries=1)


# ---- one check per project at a time, across processes -----------------------------------------------
class RedisLease:
    """A per-project lease in Redis: held while a check runs, then left to expire after the interval.

    While held, a heartbeat pushes its expiry `hold` seconds ahead every third of that. Why not one long expiry:
    a process that dies mid-check (a pod deleted, the OOM killer) never releases, and every other process then
    waits out the whole expiry before checking the project again; before, that was 10 minutes of missed
    annotations nobody recovered. Now it is at most `hold`.
    """

    # PEXPIRE only our own lease (the token): one that expired and was taken by another process is left alone
    _EXPIRE_IF_OURS = (
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
    )

    def __init__(self, connection: Any, queue_name: str, interval: float, hold: float = 30.0) -> None:
        self.connection = connection
        self.queue_name = queue_name
        self.interval_ms = max(1, int(interval * 1000))
        self.hold_ms = max(1, int(hold * 1000))
        self.beat_seconds = hold / 3
        self._expire = connection.register_script(self._EXPIRE_IF_OURS)

    @contextmanager
    def __call__(self, project: str) -> Iterator[bool]:
        key = f"lsml:catchup:{self.queue_name}:{project}"
        token = uuid.uuid4().hex
        got = bool(self.connection.set(key, token, nx=True, px=self.hold_ms))
        stop = threading.Event()
        beat = None
        if got:
            beat = threading.Thread(
                target=self._heartbeat, args=(key, token, stop), name="lsml-catchup-lease", daemon=True
            )
            beat.start()
        try:
            yield got
        finally:
            if beat is not None:
                stop.set()
                beat.join()
                # the next check of this project, by any process, comes an interval after this one ended
                self._expire(keys=[key], args=[token, max(1, self.interval_ms // 2)])

    def renew(self, key: str, token: str) -> bool:
        """Push the lease's expiry `hold` ahead; False when it is no longer ours."""
        return bool(self._expire(keys=[key], args=[token, self.hold_ms]))

    def _heartbeat(self, key: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.beat_seconds):
            try:
                if not self.renew(key, token):
                    log.warning("catch-up lease %s expired while its check ran (another process may check too)", key)
                    return
            except Exception:  # noqa: BLE001 - Redis down: the check fails on it too, and the lease lapses
                log.debug("could not renew catch-up lease %s", key, exc_info=True)


class FileLease:
    """Without Redis: an flock per project, so two processes sharing MODEL_DIR never check one project at once."""

    def __init__(self, model_dir: Path) -> None:
        self.directory = Path(model_dir) / ".lsml"

    @contextmanager
    def __call__(self, project: str) -> Iterator[bool]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(str(self.directory / f"catchup-{project}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class CatchupRunner:
    """The periodic check in a daemon thread of each server process (leases keep it to one per project)."""

    def __init__(
        self,
        checker: Checker,
        lease: Callable[[str], Any],
        interval: float,
        on_result: Callable[[CheckResult], None] | None = None,
    ) -> None:
        self.checker = checker
        self.lease = lease
        self.interval = interval
        self.on_result = on_result
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lsml-catchup", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> list[CheckResult]:
        """Check every project with a version whose lease this process gets."""
        results = []
        for project in self.checker.store.projects():
            try:
                reason = self.checker.skip_reason(project)
                if reason is not None:  # no lease (no Redis call) for a project there is nothing to do for
                    result = CheckResult(project, "skipped", reason=reason)
                else:
                    with self.lease(project) as held:
                        if not held:
                            continue
                        result = self.checker.check(project)
            except Exception as exc:  # noqa: BLE001 - Label Studio or Redis down: the next interval tries again
                log.warning("project %s: catch-up check failed: %s: %s", project, type(exc).__name__, exc)
                result = CheckResult(project, "error", reason=type(exc).__name__)
            results.append(result)
            if self.on_result is not None:
                self.on_result(result)
        return results

    def _run(self) -> None:
        # the first check comes soon after the process starts: a restart is when events were missed
        delay = min(self.interval, STARTUP_DELAY)
        while not self._stop.wait(delay):
            delay = self.interval
            try:
                results = self.run_once()
            except Exception:  # noqa: BLE001 - never let the thread die
                log.warning("catch-up pass failed", exc_info=True)
                continue
            if any(r.reason == NOT_LOADED for r in results):
                delay = min(self.interval, STARTUP_DELAY)
