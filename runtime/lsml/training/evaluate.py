"""After a fit: the held-out split of its triggers, the new version's scores, and the gate's verdict.

`run_training` calls these three steps; each is best effort where it must be
(a version whose evaluation fails is still published, with the reason in its
metadata) and strict where the gate needs it (no score under an opt-in gate
that compares against a scored served version: a candidate, not served).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from pathlib import Path
from typing import Any

from lsml.evaluation.gate import QualityGate, comparison, refusal
from lsml.evaluation.split import event_task_id, filter_payload, is_held_out
from lsml.model import BuildContext, build_model
from lsml.settings import Settings
from lsml.store import ModelStore, ModelVersion

logger = logging.getLogger("lsml.training")

#: At most this many held-out tasks are scored (the first ones by id), `BATCH` per `predict` call.
MAX_EVAL_TASKS = 5000
BATCH = 200
#: At most this many scores per version (a model's own `evaluate` may return more), names cut to this length.
MAX_METRICS = 16
MAX_METRIC_NAME = 64


def holdout_fraction(cls: type, settings: Settings) -> float:
    return float(settings.holdout_fraction) if getattr(cls, "HOLD_OUT", True) else 0.0


def training_triggers(
    project: str, event: str, payload: Any, coalesced: list[dict], fraction: float
) -> tuple[str, Any, list[dict]] | None:
    """The trigger and coalesced events `fit` gets with events about held-out tasks dropped (the newest kept
    one becomes the trigger); None when every trigger was about a held-out task (nothing to train on)."""
    if fraction <= 0:
        return event, payload, coalesced
    kept = [
        {
            "event": item.get("event"),
            "data": filter_payload(project, str(item.get("event")), item.get("data"), fraction),
        }
        for item in list(coalesced) + [{"event": event, "data": payload}]
        if isinstance(item, dict) and not is_held_out(project, event_task_id(item.get("data")), fraction)
    ]
    if not kept:
        return None
    last = kept.pop()
    return str(last["event"]), last["data"], kept


def score_staged(
    cls: type, project: str, label_config: str | None, settings: Settings, state: Any, output_dir: Path
) -> dict:
    """`{"scores": {...}, "evaluated_on": N}` of the staged version on the held-out tasks, or
    `{"evaluation_error": why}`; `{}` when scoring is off (fraction 0, the model opted out)."""
    if holdout_fraction(cls, settings) <= 0:
        return {}
    started = time.monotonic()
    try:
        staged = ModelVersion(project, 0, "candidate", output_dir, time.time())
        model = build_model(
            cls, project, label_config, BuildContext(settings, state, staged, None, records_label_config=False)
        )
        if not model.get_label_studio_url():  # held-out tasks come from Label Studio's API
            logger.info("project %s: the new version is not scored: Label Studio's URL is unknown", project)
            return {"evaluation_error": "Label Studio's URL is unknown (LABEL_STUDIO_URL, or /setup)"}
        tasks = list(itertools.islice(model.fetch_held_out_tasks(), MAX_EVAL_TASKS))
        if not tasks:
            return {"evaluation_error": "no held-out annotated task yet"}
        if type(model).evaluate is not _base_evaluate():
            scores = model.evaluate(tasks)
        else:
            predictions: list = []
            for i in range(0, len(tasks), BATCH):
                from lsml.response import ModelResponse

                got = model.predict(tasks[i : i + BATCH])
                predictions.extend(got.predictions if isinstance(got, ModelResponse) else list(got or []))
            from lsml.evaluation.scoring import score_predictions

            scores = score_predictions(model.label_config, tasks, predictions)
    except Exception as exc:  # noqa: BLE001 - the version is published unscored; the reason is kept with it
        logger.warning("project %s: scoring the new version failed: %s: %s", project, type(exc).__name__, exc)
        return {"evaluation_error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    # what `evaluate` returns becomes /metrics series and a /versions column: finite numbers, few, short names
    numbers = [
        (str(k)[:MAX_METRIC_NAME], float(v))
        for k, v in (scores or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    clean = dict(numbers[:MAX_METRICS])
    return {"scores": clean, "evaluated_on": len(tasks), "evaluation_seconds": round(time.monotonic() - started, 3)}


def _base_evaluate():
    from lsml.model import LabelStudioMLBase

    return LabelStudioMLBase.evaluate


def gate_refusal(settings: Settings, store: ModelStore, project: str, scores: dict | None) -> str | None:
    """Why the gate keeps the new version a candidate (None: it becomes current). The served version it is
    compared with is the store's current one (what `activate` and every publish move)."""
    gate = QualityGate.parse(settings.quality_gate)
    if gate is None:
        return None
    served = store.current(project)
    if served is None:
        return None
    return refusal(gate, scores, served.name, (served.metadata or {}).get("scores"))


def gate_check(settings: Settings, store: ModelStore, project: str, scores: dict | None) -> dict | None:
    """What the gate compared the new version with (`lsml.evaluation.gate.comparison`), for a refused one's
    metadata; None without a gate or a served version. Called before the publish, like `gate_refusal`."""
    gate = QualityGate.parse(settings.quality_gate)
    served = store.current(project)
    if gate is None or served is None:
        return None
    return comparison(gate, scores, served.name, (served.metadata or {}).get("scores"))


def training_base(store: ModelStore, project: str) -> ModelVersion | None:
    """The version a fit builds on: the newest one, skipping candidates the gate refused (a regression must not
    become the next fit's starting point) unless one of them is served (activated by hand)."""
    served = store.current(project)
    for version in reversed(store.versions(project)):
        if not (version.metadata or {}).get("candidate") or (served is not None and served.number == version.number):
            return version
    return None
