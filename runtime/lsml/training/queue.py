"""The training queue interface every runner implements (embedded thread today, RQ with Redis).

Coalescing rule (both runners): per project at most one job queued and one
running. A trigger while a job is queued folds into that job (same job id):
the queued request takes the newest event, payload and label config, and
keeps the earlier triggers in `coalesced` so a model that trains
incrementally can still see every annotation (`fit(..., coalesced=[...])`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from lsml.errors import LsmlError, RedisUnavailable
from lsml.jobs import JobSystem

QUEUED, STARTED, FINISHED, FAILED = "queued", "started", "finished", "failed"
STATUSES = (QUEUED, STARTED, FINISHED, FAILED)
#: Earlier triggers a queued request keeps in `coalesced` (the newest ones; older ones are only counted in
#: `coalesced_dropped`), so a labelling burst cannot grow one request without bound.
MAX_COALESCED = 1000


#: The queue's backend (Redis) cannot be reached: the caller answers 503 and keeps serving predictions.
QueueUnavailable = RedisUnavailable  # its old name


@dataclass
class TrainingRequest:
    """One training trigger: plain data, picklable and JSON-able, so any process can run it."""

    project: str
    event: str
    payload: dict = field(default_factory=dict)
    label_config: str | None = None
    coalesced: list = field(default_factory=list)  # [{"event": ..., "data": ...}] folded into this request
    coalesced_dropped: int = 0  # earlier triggers beyond MAX_COALESCED, counted but not kept

    def merged_with(self, newer: TrainingRequest) -> TrainingRequest:
        """This queued request with `newer` folded in (newer's event and payload win).

        `coalesced` keeps the newest `MAX_COALESCED` earlier triggers; the
        older ones are dropped and counted in `coalesced_dropped`.
        """
        history = list(self.coalesced) + [{"event": self.event, "data": self.payload}] + list(newer.coalesced)
        overflow = max(0, len(history) - MAX_COALESCED)
        return TrainingRequest(
            project=self.project,
            event=newer.event,
            payload=newer.payload,
            label_config=newer.label_config or self.label_config,
            coalesced=history[overflow:],
            coalesced_dropped=self.coalesced_dropped + newer.coalesced_dropped + overflow,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingRequest:
        return cls(
            project=str(data["project"]),
            event=str(data["event"]),
            payload=data.get("payload") or {},
            label_config=data.get("label_config"),
            coalesced=list(data.get("coalesced") or []),
            coalesced_dropped=int(data.get("coalesced_dropped") or 0),
        )


class InvalidTrainingRequest(LsmlError, ValueError):
    """A training request read from Redis that does not have the shape lsml writes: the job fails."""


def validated_request(project: Any, data: Any, events: tuple[str, ...]) -> TrainingRequest:
    """The `TrainingRequest` in `data` when it has the shape `RQQueue.submit` writes; else InvalidTrainingRequest.

    Why: a job's arguments come from Redis, which is not trusted. The project
    becomes a directory name and a Redis key, and the event picks what `fit`
    does, so both are checked against what lsml itself would send.
    """
    from lsml.model import project_key

    if not isinstance(project, str) or not isinstance(data, dict):
        raise InvalidTrainingRequest("a training job's arguments must be (project: str, request: object)")
    try:
        key = project_key(project)
    except ValueError as exc:
        raise InvalidTrainingRequest(f"invalid project in training job: {exc}") from None
    if key != project or data.get("project") != project:
        raise InvalidTrainingRequest(
            f"invalid project in training job: {str(project)[:80]!r} "
            "(expected a plain project id, the same in both arguments)"
        )
    event = data.get("event")
    if event not in events:
        raise InvalidTrainingRequest(f"event {str(event)[:80]!r} is not one the model trains on ({', '.join(events)})")
    checks = (("payload", dict), ("label_config", str), ("coalesced", list), ("coalesced_dropped", int))
    for name, kind in checks:
        value = data.get(name)
        if not (value is None or (isinstance(value, kind) and not isinstance(value, bool))):
            raise InvalidTrainingRequest(f"training request field {name!r} must be {kind.__name__}")
    unknown = set(data) - {"project", "event", "payload", "label_config", "coalesced", "coalesced_dropped"}
    if unknown:
        raise InvalidTrainingRequest(f"unknown training request fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    return TrainingRequest.from_dict(data)


def job_status(
    job: str,
    status: str,
    *,
    project: str | None = None,
    error: str | None = None,
    model_version: str | None = None,
    **extra: Any,
) -> dict:
    """The status dict `/job_status` returns."""
    out = {"job": job, "status": status, "project": project, "error": error, "model_version": model_version}
    out.update(extra)
    return out


#: What a finished training's result adds to `/job_status`: the new version's held-out scores and, when the
#: quality gate kept it from being served, `candidate: true` and `gate` (why).
QUALITY_FIELDS = ("scores", "candidate", "gate", "held_out")


def quality_fields(result: Any) -> dict:
    """The `QUALITY_FIELDS` a `run_training` result carries (none for anything else)."""
    if not isinstance(result, dict):
        return {}
    return {k: result[k] for k in QUALITY_FIELDS if result.get(k) is not None}


@runtime_checkable
class TrainingQueue(JobSystem, Protocol):
    """The training job system (`lsml.jobs.JobSystem`: embedded or RQ, attempts, status) plus what only
    trainings do: coalescing submits, queue statistics and a liveness check."""

    def submit(self, request: TrainingRequest) -> str:
        """Enqueue (or coalesce) and return the job id at once."""

    def status(self, job_id: str) -> dict | None:
        """`{"job", "status", "error", "model_version", ...}` or None for an unknown job."""

    def stats(self) -> dict:
        """`{"queued": int, "running": int, "failed": int}` for /metrics."""

    def ping(self) -> bool:
        """True when the queue can take jobs."""
