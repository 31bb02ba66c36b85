"""The training queue interface every runner implements (embedded thread today, RQ with Redis).

Coalescing rule (both runners): per project at most one job queued and one
running. A trigger while a job is queued folds into that job (same job id):
the queued request takes the newest event, payload and label config, and
keeps the earlier triggers in `coalesced` so a model that trains
incrementally can still see every annotation (`fit(..., coalesced=[...])`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable

QUEUED, STARTED, FINISHED, FAILED = "queued", "started", "finished", "failed"
STATUSES = (QUEUED, STARTED, FINISHED, FAILED)


@dataclass
class TrainingRequest:
    """One training trigger: plain data, picklable and JSON-able, so any process can run it."""

    project: str
    event: str
    payload: dict = field(default_factory=dict)
    label_config: Optional[str] = None
    coalesced: list = field(default_factory=list)  # [{"event": ..., "data": ...}] folded into this request

    def merged_with(self, newer: "TrainingRequest") -> "TrainingRequest":
        """This queued request with `newer` folded in (newer's event and payload win)."""
        history = list(self.coalesced) + [{"event": self.event, "data": self.payload}]
        return TrainingRequest(
            project=self.project,
            event=newer.event,
            payload=newer.payload,
            label_config=newer.label_config or self.label_config,
            coalesced=history + list(newer.coalesced),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingRequest":
        return cls(
            project=str(data["project"]),
            event=str(data["event"]),
            payload=data.get("payload") or {},
            label_config=data.get("label_config"),
            coalesced=list(data.get("coalesced") or []),
        )


def job_status(job: str, status: str, *, project: Optional[str] = None, error: Optional[str] = None,
               model_version: Optional[str] = None, **extra: Any) -> dict:
    """The status dict `/job_status` returns."""
    out = {"job": job, "status": status, "project": project, "error": error, "model_version": model_version}
    out.update(extra)
    return out


@runtime_checkable
class TrainingQueue(Protocol):
    def submit(self, request: TrainingRequest) -> str:
        """Enqueue (or coalesce) and return the job id at once."""

    def status(self, job_id: str) -> Optional[dict]:
        """`{"job", "status", "error", "model_version", ...}` or None for an unknown job."""

    def stats(self) -> dict:
        """`{"queued": int, "running": int, "failed": int}` for /metrics."""

    def ping(self) -> bool:
        """True when the queue can take jobs."""
