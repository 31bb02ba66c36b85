"""Model quality in the MLBackend's status, from what the backend serves: pure, no API or HTTP access.

The quality poller (``quality_step``) asks the backend which version each project serves
(``backend_api``) and hands the answer here: ``quality_status`` is what status carries
(``status.served``, one entry per project, and ``status.score``, the SCORE printer column) and
``held_events`` the ``CandidateHeld`` events a change of it deserves: one per candidate the
quality gate kept from being served, whatever the number of polls or operator restarts (the
candidate already in status is not announced again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import WARNING, Event

#: The status keys the poller owns (the reconcile's status write leaves them alone).
QUALITY_KEYS = ("served", "score")


@dataclass(frozen=True)
class HeldCandidate:
    """The newest version the quality gate kept from being served (newer than the served one)."""

    version: str
    metric: str | None = None
    score: float | None = None
    served_version: str | None = None
    served_score: float | None = None
    tolerance: float | None = None


@dataclass(frozen=True)
class ServedVersion:
    """What one project of the backend serves: its version, that version's held-out scores, a held candidate."""

    project: str
    version: str | None
    scores: dict[str, float] = field(default_factory=dict)
    held: HeldCandidate | None = None


def _held(held: HeldCandidate) -> dict[str, Any]:
    out = {
        "version": held.version,
        "metric": held.metric,
        "score": held.score,
        "servedVersion": held.served_version,
        "servedScore": held.served_score,
        "tolerance": held.tolerance,
    }
    return {k: v for k, v in out.items() if v is not None}


def _entry(s: ServedVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"project": s.project}
    if s.version:
        out["version"] = s.version
    if s.scores:
        out["scores"] = dict(s.scores)
    if s.held is not None:
        out["heldCandidate"] = _held(s.held)
    return out


def score_text(served: list[ServedVersion], metric: str | None = None) -> str | None:
    """The SCORE column: ``metric=value`` of the first project (in project order) whose served version has
    scores; ``metric`` (the quality gate's) when that version has it, else its first metric by name."""
    for s in served:
        if s.scores:
            name = metric if metric in s.scores else sorted(s.scores)[0]
            return f"{name}={s.scores[name]:.3f}"
    return None


def quality_status(served: list[ServedVersion], metric: str | None = None) -> dict[str, Any]:
    """``{"served": [...], "score": ...}``: what the poller writes (a None score removes the column's value)."""
    return {"served": [_entry(s) for s in served], "score": score_text(served, metric)}


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "?"


def held_message(project: str, held: dict[str, Any]) -> str:
    """The ``CandidateHeld`` event's text: which version, the metric, both scores and the tolerance."""
    served = held.get("servedVersion") or "the served version"
    if held.get("metric") is None:
        return f"project {project}: {held.get('version')} kept as a candidate, not served (quality gate)"
    if held.get("score") is None:
        return (
            f"project {project}: {held.get('version')} kept as a candidate, not served: it has no {held['metric']} "
            f"score and {served} has {_fmt(held.get('servedScore'))} (tolerance {held.get('tolerance', 0):g})"
        )
    return (
        f"project {project}: {held.get('version')} kept as a candidate, not served: {held['metric']} "
        f"{_fmt(held.get('score'))} is below {served}'s {_fmt(held.get('servedScore'))} minus tolerance "
        f"{held.get('tolerance', 0):g} (label-studio-ml activate serves it)"
    )


def held_events(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """One Warning ``CandidateHeld`` per project whose held candidate is new since ``old`` (status as written)."""
    before = {
        str(e.get("project")): (e.get("heldCandidate") or {}).get("version")
        for e in old.get("served") or []
        if isinstance(e, dict)
    }
    events = []
    for entry in new.get("served") or []:
        held = entry.get("heldCandidate")
        if held and before.get(str(entry["project"])) != held.get("version"):
            events.append(Event(WARNING, "CandidateHeld", held_message(str(entry["project"]), held)))
    return events
