"""Acceptance: how much of each prediction annotators keep, per model version.

Label Studio records the prediction an annotation started from in the
annotation's `parent_prediction` (a prediction id; Label Studio 1.23.2's
webhook serialises the annotation with every field, so the id is in the
`ANNOTATION_CREATED` / `ANNOTATION_UPDATED` payload, but the prediction itself
is not: the task in the payload carries no predictions). Fetching it costs a
round trip to Label Studio, which the webhook handler must not pay (Label
Studio without Redis sends webhooks inside the annotator's request, 1 s
timeout), so the webhook path does nothing more than before: the payload
already travels with the training request, and `run_training` calls
`record_events` before `fit`, under the project's training lock (one writer per
project across processes), with the project's Label Studio credential.

Without `parent_prediction` (an annotation saved through the API without it, or by a client that does not
set it) the prediction is the task's prediction of the version that was served when the annotation was
created (`version_at`: the configured pin, else the newest version published as current at or before the
annotation's `created_at`; `activate` is not replayed): `GET /api/predictions/?task=<id>`, the newest one of
that version created before the annotation. No such prediction (the task was predicted by no version, or
by another one, or the store has no version of that time): the annotation was drawn from scratch, nothing
is counted. The task fetches share the `MAX_FETCHES` / `FETCH_BUDGET` bounds with the parent fetches.

Matching (`compare`): a result item is one unit (a region, or a classification's
choices). Items of the two results are paired when their `from_name`,
`to_name` and `type` agree and either (1) their `id` is the same, or (2) their
position (the `value` without its label keys, e.g. `x`/`y`/`width`/`height`,
`start`/`end`) is the same, or (3) neither has a position (a `Choices`,
`TextArea`, `Rating`... of the whole object: one per control). A pair whose
`value` is equal (floats within `TOLERANCE`) is *kept*, else *changed* (other
labels, moved or resized). A predicted item without a pair was *deleted*; an
annotation item without one was *added*.

Storage (`lsml.state`, key `acceptance`: Redis with `REDIS_URL`, else sqlite):
each annotation's latest counts (an update replaces what the annotation
counted before), the newest `MAX_ANNOTATIONS` per project; older ones are folded
into per-version totals. At most `MAX_VERSIONS` versions per project (the ones
annotated most recently).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

STATE_KEY = "acceptance"
OUTCOMES = ("kept", "changed", "deleted", "added")
#: Annotations whose own counts are kept per project (an update within them replaces, not adds).
MAX_ANNOTATIONS = 5000
#: Model versions reported per project (the most recently annotated), which bounds /metrics' series too.
MAX_VERSIONS = 20
#: Predictions fetched from Label Studio per training run; events beyond are not counted (logged).
MAX_FETCHES = 500
#: Seconds a training run spends fetching predictions at most (before its fit); the rest is not counted.
FETCH_BUDGET = 30.0
#: Two coordinates closer than this (Label Studio's percent units) are the same position.
TOLERANCE = 1e-3
#: `value` keys that name what a region *is* (its labels or text), not where it is.
LABEL_KEYS = frozenset(
    {
        "choices",
        "labels",
        "rectanglelabels",
        "polygonlabels",
        "keypointlabels",
        "brushlabels",
        "ellipselabels",
        "polylinelabels",
        "hypertextlabels",
        "paragraphlabels",
        "timeserieslabels",
        "videorectangle",
        "taxonomy",
        "text",
        "rating",
        "number",
        "datetime",
        "ranker",
        "pairwise",
    }
)
#: `value` keys that are *not* a position even though they are not labels (a region's shown text, a score).
_NOT_POSITION = frozenset({"score"})


@dataclass
class Counts:
    kept: int = 0
    changed: int = 0
    deleted: int = 0
    added: int = 0

    @property
    def predicted(self) -> int:
        return self.kept + self.changed + self.deleted

    def as_list(self) -> list[int]:
        return [self.kept, self.changed, self.deleted, self.added]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _position(item: dict) -> dict:
    value = item.get("value")
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k not in LABEL_KEYS and k not in _NOT_POSITION}


def _kind(item: dict) -> tuple:
    return (item.get("from_name"), item.get("to_name"), item.get("type"))


def _units(result: object) -> list[dict]:
    """The result's items that describe a region or a choice (relations and malformed items are left out)."""
    if not isinstance(result, list):
        return []
    return [i for i in result if isinstance(i, dict) and i.get("type") != "relation" and "value" in i]


def compare(predicted: object, annotated: object) -> Counts:
    """Count what the annotator did to `predicted` (a prediction's `result`) to get `annotated`."""
    pred, ann = _units(predicted), _units(annotated)
    free = list(range(len(ann)))
    pairs: list[tuple[dict, dict]] = []
    unmatched: list[dict] = []

    def take(match: Callable[[dict, dict], bool], item: dict) -> bool:
        for pos, j in enumerate(free):
            if _kind(ann[j]) == _kind(item) and match(item, ann[j]):
                pairs.append((item, ann[free.pop(pos)]))
                return True
        return False

    rules: tuple[Callable[[dict, dict], bool], ...] = (
        lambda p, a: p.get("id") is not None and p.get("id") == a.get("id"),
        lambda p, a: bool(_position(p)) and _same(_position(p), _position(a)),
        lambda p, a: not _position(p) and not _position(a),
    )
    pending = pred
    for rule in rules:  # every item tries the strongest rule first, so an id match is never stolen by a position
        unmatched = []
        for item in pending:
            if not take(rule, item):
                unmatched.append(item)
        pending = unmatched
    counts = Counts(deleted=len(pending), added=len(free))
    for p, a in pairs:
        if _same(p.get("value"), a.get("value")):
            counts.kept += 1
        else:
            counts.changed += 1
    return counts


# ---- events -> counts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Observation:
    """One annotation as an event carried it: which prediction it started from and its result.

    `deleted`: the annotation was deleted (`ANNOTATIONS_DELETED`), what it counted is withdrawn.
    `prediction` None otherwise: no `parent_prediction`; `task` and `created_at` find the prediction of the
    version served then (module docstring)."""

    annotation: int
    prediction: int | None
    result: list
    cancelled: bool = False
    deleted: bool = False
    task: int | None = None
    created_at: float | None = None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_time(value: object) -> float | None:
    """Label Studio's ISO time (`2026-12-04T17:27:28.123456Z`) as a Unix time; None when it is not one."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    from datetime import datetime, timezone

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _task_id(ann: dict, data: dict) -> int | None:
    task = data.get("task")
    tid = task.get("id") if isinstance(task, dict) else ann.get("task")
    if isinstance(tid, dict):
        tid = tid.get("id")
    return tid if _is_id(tid) else None


def observations(events: Iterable[tuple[Any, Any]]) -> list[Observation]:
    """The annotations of the events (with their parent prediction, else their task and creation time), and
    deleted annotations, in event order (an annotation's newest event wins)."""
    found: list[Observation] = []
    for event, data in events:
        if not isinstance(data, dict):
            continue
        if event == "ANNOTATIONS_DELETED":
            deleted = data.get("annotations")
            if not isinstance(deleted, list):
                continue
            found.extend(
                Observation(a["id"], None, [], deleted=True)
                for a in deleted
                if isinstance(a, dict) and _is_id(a.get("id"))
            )
            continue
        ann = data.get("annotation")
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED") or not isinstance(ann, dict):
            continue
        aid, parent = ann.get("id"), ann.get("parent_prediction")
        if isinstance(parent, dict):  # a serializer that nests the prediction
            parent = parent.get("id")
        if not isinstance(aid, int) or not _is_id(aid):
            continue
        result = ann.get("result")
        found.append(
            Observation(
                aid,
                parent if _is_id(parent) else None,
                result if isinstance(result, list) else [],
                bool(ann.get("was_cancelled")),
                task=None if _is_id(parent) else _task_id(ann, data),
                created_at=None if _is_id(parent) else parse_time(ann.get("created_at")),
            )
        )
    return found


def _from_task(predictions: object, version: str, before: float) -> dict | None:
    """The newest of a task's predictions of `version` created at or before `before` (Label Studio's clock)."""
    found = [
        (created, p)
        for p in (predictions if isinstance(predictions, list) else [])
        if isinstance(p, dict)
        and str(p.get("model_version") or "") == version
        and (created := parse_time(p.get("created_at"))) is not None
        and created <= before
    ]
    return max(found, key=lambda item: item[0])[1] if found else None


def record(
    state: Any,
    project: str,
    observed: list[Observation],
    fetch_prediction: Callable[[int], dict | None],
    fetch_task_predictions: Callable[[int], list | None] | None = None,
    version_at: Callable[[float], str | None] | None = None,
) -> int:
    """Count `observed` into the project's acceptance state; returns how many annotations were counted.

    `fetch_prediction(id)` returns Label Studio's prediction (`result`, `model_version`) or None when it
    is gone; `fetch_task_predictions(task)` a task's predictions, and `version_at(unix time)` the version
    served then, for annotations without a parent (both None: those are not counted). At most
    `MAX_FETCHES` distinct fetches within `FETCH_BUDGET` seconds, the annotations past either are not
    counted (logged). A cancelled (skipped) or deleted annotation counts nothing and withdraws what it
    counted before."""
    if not observed:
        return 0
    saved = load(state, project)
    fetched: dict[tuple[str, int], Any] = {}
    counted = skipped = 0
    deadline = time.monotonic() + FETCH_BUDGET

    def fetch(kind: str, ident: int, how: Callable[[int], Any]) -> tuple[bool, Any]:
        if (kind, ident) not in fetched:
            if len(fetched) >= MAX_FETCHES or time.monotonic() > deadline:
                return False, None
            fetched[(kind, ident)] = how(ident)
        return True, fetched[(kind, ident)]

    for obs in observed:
        key = str(obs.annotation)
        saved["annotations"].pop(key, None)
        if obs.deleted or obs.cancelled:
            continue
        if obs.prediction is not None:
            ok, pred = fetch("prediction", obs.prediction, fetch_prediction)
        elif fetch_task_predictions is None or version_at is None or obs.task is None or obs.created_at is None:
            continue
        else:
            served = version_at(obs.created_at)
            if served is None:  # no version was served then: the annotator saw no prediction of ours
                continue
            ok, preds = fetch("task", obs.task, fetch_task_predictions)
            pred = _from_task(preds, served, obs.created_at) if ok else None
        if not ok:
            skipped += 1
            continue
        if not isinstance(pred, dict):
            continue
        version = str(pred.get("model_version") or "unknown")[:64]
        saved["annotations"][key] = [version, *compare(pred.get("result"), obs.result).as_list()]
        saved["touched"] = [v for v in saved["touched"] if v != version] + [version]
        counted += 1
    if skipped:
        logger.warning(
            "project %s: %d annotations not counted for acceptance (past %d predictions or %.0f s in one training)",
            project,
            skipped,
            MAX_FETCHES,
            FETCH_BUDGET,
        )
    _bound(saved)
    state.set(project, STATE_KEY, saved)
    return counted


def _bound(saved: dict) -> None:
    anns: dict = saved["annotations"]
    while len(anns) > MAX_ANNOTATIONS:  # dicts keep insertion order: the oldest first
        key = next(iter(anns))
        version, *counts = anns.pop(key)
        total = saved["retired"].setdefault(version, [0, 0, 0, 0, 0])
        for i, c in enumerate(counts):
            total[i] += c
        total[4] += 1
    dropped = saved["touched"][:-MAX_VERSIONS]
    if dropped:
        saved["touched"] = saved["touched"][-MAX_VERSIONS:]
        for version in dropped:
            saved["retired"].pop(version, None)
        saved["annotations"] = {k: v for k, v in anns.items() if v[0] not in dropped}


def load(state: Any, project: str) -> dict:
    saved = state.get(project, STATE_KEY)
    if not isinstance(saved, dict):
        saved = {}
    return {
        "annotations": dict(saved.get("annotations") or {}),
        "retired": dict(saved.get("retired") or {}),
        "touched": list(saved.get("touched") or []),
    }


def report(state: Any, project: str) -> dict[str, dict]:
    """Per model version: `annotations` counted, `kept`/`changed`/`deleted`/`added` regions, `predicted`
    (kept + changed + deleted), and `accepted_share` (kept / predicted, None without predicted regions)."""
    saved = load(state, project)
    totals: dict[str, list[int]] = {v: list(c) for v, c in saved["retired"].items()}
    for version, *counts in saved["annotations"].values():
        total = totals.setdefault(version, [0, 0, 0, 0, 0])
        for i, c in enumerate(counts):
            total[i] += c
        total[4] += 1
    out = {}
    for version, (kept, changed, deleted, added, counted) in totals.items():
        predicted = kept + changed + deleted
        out[version] = {
            "annotations": counted,
            "predicted": predicted,
            "kept": kept,
            "changed": changed,
            "deleted": deleted,
            "added": added,
            "accepted_share": round(kept / predicted, 4) if predicted else None,
        }
    return out


def record_request(settings: Any, state: Any, request: Any, store: Any = None) -> int:
    """Count the annotation events of a training request (its own and the coalesced ones, oldest first);
    `store` (the project's model store) says which version was served when an annotation without a
    parent prediction was made (`lsml.versions.version_at`).

    Never raises: acceptance is a report, it must not cost a training."""
    try:
        events = [(c.get("event"), c.get("data")) for c in request.coalesced if isinstance(c, dict)]
        events.append((request.event, request.payload))
        observed = observations(events)
        if not observed:
            return 0
        client = _client(settings, state, request.project)
        if client is None:
            logger.info("project %s: no Label Studio credential: acceptance not counted", request.project)
            return 0
        version_at = None
        if store is not None:
            from lsml.versions import version_at as served_then

            version_at = lambda when: served_then(store, settings, request.project, when)  # noqa: E731
        with client:
            return record(
                state,
                request.project,
                observed,
                lambda pid: _fetch(client, pid),
                lambda tid: client.predictions(task=tid),
                version_at,
            )
    except Exception:  # noqa: BLE001 - a report must never fail a training
        logger.warning("project %s: acceptance not counted", request.project, exc_info=True)
        return 0


def _client(settings: Any, state: Any, project: str) -> Any:
    from lsml import credentials
    from lsml.labelstudio import connect

    credential = credentials.resolve(settings, state.get(project, credentials.STATE_KEY))
    if not credential.url or not credential.token:
        return None
    return connect(credential.url, credential, timeout=10, media_policy=credentials.media_policy(settings, credential))


def _fetch(client: Any, prediction: int) -> dict | None:
    from lsml.labelstudio import LabelStudioError

    try:
        return client.prediction(prediction)
    except LabelStudioError as exc:
        if exc.status == 404:  # deleted since: nothing to compare with
            return None
        raise
