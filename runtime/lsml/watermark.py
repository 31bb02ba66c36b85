"""A project's training watermark: which of Label Studio's annotations a model version accounts for.

Why: Label Studio 1.23 posts each annotation event once (1 s timeout, no
retry). An event lost while the backend restarts, while its Redis is down or
while a pod rolls would never reach `fit`. Catch-up (`lsml.catchup`) finds
such annotations by asking Label Studio what changed after the watermark and
comparing it with what the watermark accounts for.

A watermark is plain JSON, stored with each published version (metadata
`watermark` in `lsml-version.json`) and, advanced by catch-up's checks, in
state (`STATE_KEY`):

* ``updated_at``: Label Studio's time (its clock, never ours) up to which
  every annotation is accounted for; None until a first check saw the project;
* ``seen``: ``{annotation id: updated_at}`` of annotations changed after
  ``updated_at`` that the version trained on (webhook events) or that catch-up
  handed to a training; a change is *missed* when Label Studio reports an
  ``updated_at`` after the watermark that ``seen`` does not hold;
* ``ids``: the live (non-cancelled) annotation ids accounted for, as sorted
  ``[first, last]`` ranges (ids are mostly consecutive, so a project of 100,000
  annotations is a handful of ranges): deletions are found by comparing their
  number with Label Studio's count, and named by comparing the sets;
* ``complete``: whether ``ids`` holds every live annotation (a version trained
  before catch-up first saw the project does not know them all);
* ``config``: SHA-256 of the label config the version trained with.

Why not only the newest ``updated_at`` a training saw: a webhook arriving
after a lost one carries a newer time, and the lost annotation would sit
below the watermark forever.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

#: The state key catch-up keeps a project's advanced watermark under: `{"version": name|None, "watermark": {...}}`.
STATE_KEY = "catchup"


def config_hash(label_config: str | None) -> str | None:
    """SHA-256 of a label config (None without one)."""
    return hashlib.sha256(label_config.encode()).hexdigest() if label_config else None


def parse_time(value: Any) -> datetime | None:
    """Label Studio's ISO time as an aware UTC datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as `[[first, last], ...]` runs of consecutive ids."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


#: The most annotation ids a watermark read back may hold. Why a bound: the ranges are read from Redis and
#: from version files, and a few bytes of `[[0, 9999999], [10000000, 19999999], ...]` would expand into a set of
#: gigabytes in the server and every training. 2 million ids cost ~130 MB as a set; a project past that is
#: re-baselined by catch-up at each check instead (a warning says so).
MAX_IDS = 2_000_000


def from_ranges(runs: Any) -> set[int] | None:
    """The ids of `to_ranges`' runs (anything malformed is skipped); None when they name more than `MAX_IDS`."""
    found: set[int] = set()
    total = 0
    for run in runs if isinstance(runs, list) else []:
        if not (isinstance(run, list) and len(run) == 2 and all(type(x) is int for x in run) and run[0] <= run[1]):
            continue
        total += run[1] - run[0] + 1
        if total > MAX_IDS:
            return None
        found.update(range(run[0], run[1] + 1))
    return found


@dataclass
class Watermark:
    """See the module doc. Mutable while a training or a check builds it; stored with `to_dict`."""

    updated_at: str | None = None
    seen: dict[str, str] = field(default_factory=dict)
    ids: set[int] = field(default_factory=set)
    complete: bool = False
    config: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Watermark:
        data = data if isinstance(data, dict) else {}
        seen = data.get("seen") if isinstance(data.get("seen"), dict) else {}
        ids = from_ranges(data.get("ids"))
        if ids is None:
            log.warning(
                "a stored watermark names more than %d annotation ids: it is ignored (catch-up takes a new baseline)",
                MAX_IDS,
            )
            return cls(config=data.get("config") if isinstance(data.get("config"), str) else None)
        return cls(
            updated_at=data.get("updated_at") if isinstance(data.get("updated_at"), str) else None,
            seen={str(k): str(v) for k, v in seen.items()},
            ids=ids,
            complete=data.get("complete") is True,
            config=data.get("config") if isinstance(data.get("config"), str) else None,
        )

    def to_dict(self) -> dict:
        return {
            "updated_at": self.updated_at,
            "seen": dict(sorted(self.seen.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)),
            "ids": to_ranges(self.ids),
            "complete": self.complete,
            "config": self.config,
        }

    def copy(self) -> Watermark:
        return Watermark(self.updated_at, dict(self.seen), set(self.ids), self.complete, self.config)

    # ---- what a training saw --------------------------------------------------
    def account(self, annotation: dict) -> None:
        """One annotation as a created/updated event carries it."""
        ident = annotation.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool):
            return
        stamp = annotation.get("updated_at") or annotation.get("created_at")
        if isinstance(stamp, str):
            self.seen[str(ident)] = stamp
        if annotation.get("was_cancelled"):
            self.ids.discard(ident)
        else:
            self.ids.add(ident)

    def forget(self, ids: Iterable[Any]) -> None:
        """Annotations a delete event named."""
        for ident in ids:
            if isinstance(ident, int) and not isinstance(ident, bool):
                self.ids.discard(ident)
                self.seen.pop(str(ident), None)

    def fold_event(self, event: str, data: Any) -> None:
        """Account for one training trigger (`{"event", "data"}` of `TrainingRequest.coalesced`, or the request's own)."""
        data = data if isinstance(data, dict) else {}
        if event in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            annotation = data.get("annotation")
            if isinstance(annotation, dict):
                self.account(annotation)
        elif event == "ANNOTATION_DELETED":
            annotation = data.get("annotation")
            if isinstance(annotation, dict):
                self.forget([annotation.get("id")])
        elif event == "ANNOTATIONS_DELETED":
            items = data.get("annotations")
            self.forget(a.get("id") for a in items if isinstance(a, dict)) if isinstance(items, list) else None
        recovered = data.get("catchup")  # catch-up's START_TRAINING names what it found (lsml.catchup)
        if isinstance(recovered, dict):
            # the HTTP routes drop a client's `catchup`; this holds for a job payload read back from Redis too:
            # whatever its shape, folding it never raises (a raise here comes after `fit` and loses the version)
            seen = recovered.get("seen")
            for ident, stamp in seen.items() if isinstance(seen, dict) else ():
                if (
                    isinstance(ident, str)
                    and ident.isascii()
                    and ident.isdigit()
                    and len(ident) <= 18
                    and isinstance(stamp, str)
                ):
                    self.seen[ident] = stamp
                    self.ids.add(int(ident))
            deleted = recovered.get("deleted")
            self.forget(deleted if isinstance(deleted, list) else [])

    # ---- what a check found -----------------------------------------------------
    def missed(self, annotation: dict) -> bool:
        """Whether a live or cancelled annotation Label Studio reports changed after `updated_at` is unaccounted for."""
        ident = annotation.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool):
            return False
        stamp = annotation.get("updated_at") or annotation.get("created_at")
        after = parse_time(stamp)
        mark = parse_time(self.updated_at)
        if mark is not None and after is not None and after <= mark:
            return False
        known = parse_time(self.seen.get(str(ident)))
        if known is not None and after is not None and known >= after:
            return False
        if annotation.get("was_cancelled"):
            return ident in self.ids  # a cancelled annotation matters only when it replaced a live one
        return True

    def advance(self, to: str | None) -> None:
        """Everything up to `to` (Label Studio's time) is accounted for: drop `seen` entries at or before it."""
        mark = parse_time(to)
        if mark is None:
            return
        current = parse_time(self.updated_at)
        if current is not None and current >= mark:
            return
        self.updated_at = to
        self.seen = {k: v for k, v in self.seen.items() if (parse_time(v) or mark) > mark}


#: `seen` entries beyond which a watermark gives up and asks for a new baseline (catch-up not running for long).
MAX_SEEN = 50_000


def training_base(state: Any, project: str, version: Any, job: str | None = None) -> Watermark:
    """The watermark a training builds on: catch-up's for `version` when it has one, else the version's own.

    `job`: the training's own job id. Catch-up's watermark counts the changes it handed to its recovery job as
    accounted for; another training (one running while that job waits) did not see them, so it builds on the
    watermark from before the hand-over. Built on the advanced one, its version claimed them, and a recovery job
    lost afterwards (a restart drops the embedded queue's waiting jobs) left them untrained for good: catch-up
    compares with the newest version's watermark and found nothing missing."""
    name = version.name if version is not None else None
    try:
        stored = state.get(project, STATE_KEY)
    except Exception:  # noqa: BLE001 - state (Redis) down: the version's own watermark is the durable one
        log.debug("project %s: catch-up's watermark unavailable", project, exc_info=True)
        stored = None
    if isinstance(stored, dict) and stored.get("version") == name:
        recovery, before = stored.get("job"), stored.get("before")
        if job is not None and isinstance(recovery, str) and recovery != job and isinstance(before, dict):
            return Watermark.from_dict(before)
        return Watermark.from_dict(stored.get("watermark"))
    if version is None:
        return Watermark()
    return Watermark.from_dict(version.metadata.get("watermark"))
