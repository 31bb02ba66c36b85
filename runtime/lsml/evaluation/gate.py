"""The publish gate (`LSML_QUALITY_GATE`, opt-in): a new version becomes current only if it scores at least the
served one minus a tolerance; otherwise it is published as a *candidate*: kept, scored, not served.

`label-studio-ml activate` (or `POST /versions/activate`) serves a candidate by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityGate:
    metric: str
    tolerance: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> QualityGate | None:
        """`"accuracy:0.02"` (metric, tolerance) or `"accuracy"` (tolerance 0); None for unset/empty.

        Raises ValueError naming the problem for anything else."""
        if text is None or not text.strip():
            return None
        metric, _, tolerance = text.strip().partition(":")
        metric = metric.strip()
        if not metric:
            raise ValueError(f"LSML_QUALITY_GATE {text!r}: expected METRIC[:TOLERANCE], e.g. accuracy:0.02")
        try:
            value = float(tolerance) if tolerance.strip() else 0.0
        except ValueError:
            raise ValueError(f"LSML_QUALITY_GATE {text!r}: tolerance {tolerance!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"LSML_QUALITY_GATE {text!r}: tolerance must be within 0..1")
        return cls(metric, value)

    def __str__(self) -> str:
        return f"{self.metric}:{self.tolerance:g}"


def refusal(
    gate: QualityGate, new_scores: dict | None, served_name: str | None, served_scores: dict | None
) -> str | None:
    """Why the new version must not become current (None: it may).

    No served version, or a served one without the metric: nothing to compare
    with, the new one passes. The served one has it and the new one does not
    (its evaluation failed): refused, since that is what a broken model looks like."""
    if served_name is None or not served_scores or gate.metric not in served_scores:
        return None
    old = float(served_scores[gate.metric])
    if not new_scores or gate.metric not in new_scores:
        return f"quality gate {gate}: no {gate.metric} score for the new version ({served_name} has {old:.4f})"
    new = float(new_scores[gate.metric])
    if new >= old - gate.tolerance:
        return None
    return f"quality gate {gate}: {gate.metric} {new:.4f} is below {served_name}'s {old:.4f} minus {gate.tolerance:g}"


def comparison(gate: QualityGate, new_scores: dict | None, served_name: str, served_scores: dict | None) -> dict:
    """What the gate compared, as data (`gate_check` in a candidate's metadata; the operator's `CandidateHeld`
    event and `status.served[].heldCandidate` read it): metric, tolerance, the new score (None: not scored),
    the served version and its score."""
    new = (new_scores or {}).get(gate.metric)
    old = (served_scores or {}).get(gate.metric)
    return {
        "metric": gate.metric,
        "tolerance": gate.tolerance,
        "score": float(new) if new is not None else None,
        "served": served_name,
        "served_score": float(old) if old is not None else None,
    }
