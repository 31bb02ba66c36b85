"""`run_training`: the one job function every queue runs (embedded thread, RQ worker).

It takes only picklable arguments and rebuilds everything else (store,
state, model class) from `settings` and `model_ref`, so it runs the same in
the server process or in a worker on another machine.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from typing import Any

from lsml import acceptance
from lsml.integrity import verify_version
from lsml.model import BuildContext, ModelRef, build_model, load_model_class, model_ref_string
from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import make_store
from lsml.training import deadline, evaluate, priority, publishing
from lsml.training.queue import TrainingRequest
from lsml.watermark import MAX_SEEN, Watermark, config_hash, training_base

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:1000]


def _accepts_kwargs(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def trained_watermark(
    state: Any,
    project: str,
    base_version: Any,
    request: TrainingRequest,
    label_config: str | None,
    job_id: str | None = None,
) -> Watermark:
    """The watermark of the version this training publishes (`lsml.watermark`): what the version it built on
    accounted for (catch-up's advanced copy when it has one and this is its recovery job, or no recovery waits),
    with every trigger the training got folded in."""
    watermark = training_base(state, project, base_version, job=job_id or "").copy()
    for item in list(request.coalesced) + [{"event": request.event, "data": request.payload}]:
        if isinstance(item, dict):
            watermark.fold_event(str(item.get("event")), item.get("data"))
    watermark.config = config_hash(label_config) or watermark.config
    if not watermark.complete or len(watermark.seen) > MAX_SEEN:
        # nothing to compare with until catch-up takes a baseline: keep the file small
        return Watermark(config=watermark.config)
    return watermark


def run_training(
    model_ref: ModelRef, request: TrainingRequest | dict, settings: Settings, job_id: str | None = None
) -> dict:
    """Train `request.project` once: build the model on the current version, fit, publish, prune.

    Returns `{"model_version", "published", "project", "event", "result"}`. When
    `fit` returns False nothing is published and `model_version` is the current one.
    Raises whatever `fit` raises (nothing is published then).
    """
    if isinstance(request, dict):
        request = TrainingRequest.from_dict(request)
    cls = load_model_class(model_ref, settings.backend_dir)
    store = make_store(settings)
    state = make_state(settings)
    project = request.project
    label_config = request.label_config
    if label_config:
        # The server recorded it when the trigger arrived (newer ones may have come since: a job trains on its own
        # request's config, but must not write an older one over them); a job run without a server may be first.
        if state.get(project, "label_config") is None:
            state.set(project, "label_config", label_config)
    else:
        label_config = state.get(project, "label_config")
    logger.info("project %s: training %s on %s (job %s)", project, model_ref_string(model_ref), request.event, job_id)
    with priority.training_priority(settings.training_nice), store.training_lock(project):
        acceptance.record_request(
            settings, state, request, store
        )  # before fit: counted whatever fit does; never raises
        # the newest version, even while an older one is pinned (store.activate); not a candidate the gate refused
        current = evaluate.training_base(store, project)
        if current is not None:
            verify_version(current.path, current.name)  # fit builds on it: refuse a tampered one
        with store.staging(project) as output_dir:
            model = build_model(
                cls,
                project,
                label_config,
                BuildContext(settings, state, current, output_dir, records_label_config=False),
            )
            triggers = evaluate.training_triggers(
                project, request.event, request.payload, request.coalesced, evaluate.holdout_fraction(cls, settings)
            )
            if triggers is None:  # every trigger is about a held-out task: no fit sees those
                logger.info("project %s: every trigger is about a held-out task: no fit (job %s)", project, job_id)
                return {
                    "model_version": current.name if current else model.model_version,
                    "published": False,
                    "held_out": True,
                    "project": project,
                    "event": request.event,
                    "result": None,
                }
            event, payload, coalesced = triggers
            kwargs: dict[str, Any] = {}
            if _accepts_kwargs(model.fit):
                kwargs["job_id"] = job_id
                if coalesced:
                    kwargs["coalesced"] = coalesced
                if request.coalesced_dropped:
                    kwargs["coalesced_dropped"] = request.coalesced_dropped
            fit_started = time.monotonic()
            result = model.fit(event, payload, **kwargs)
            fit_seconds = round(time.monotonic() - fit_started, 6)
            if result is False:
                logger.info("project %s: fit published nothing (job %s)", project, job_id)
                return {
                    "model_version": current.name if current else model.model_version,
                    "published": False,
                    "project": project,
                    "event": request.event,
                    "result": None,
                }
            watermark = trained_watermark(state, project, current, request, label_config, job_id)
            quality = evaluate.score_staged(cls, project, label_config, settings, state, output_dir)
            refused = evaluate.gate_refusal(settings, store, project, quality.get("scores"))
            if refused:
                quality["candidate"] = True
                quality["gate"] = refused
                quality["gate_check"] = evaluate.gate_check(settings, store, project, quality.get("scores"))
            with deadline.publishing():  # an embedded job abandoned at LSML_FIT_TIMEOUT publishes nothing
                version = store.publish(
                    project,
                    output_dir,
                    metadata={
                        "event": request.event,
                        "job": job_id,
                        "model": model_ref_string(model_ref),
                        "result": _jsonable(result),
                        "fit_seconds": fit_seconds,  # lsml_model_fit_seconds once a server loads the version
                        "watermark": watermark.to_dict(),
                        # the model's own version name (`self.set("model_version", ...)`), beside lsml's number
                        **({"own_version": model.own_model_version} if model.own_model_version else {}),
                        **quality,  # scores, evaluated_on (lsml.training.evaluate); candidate + gate when refused
                    },
                    make_current=not refused,
                )
        pin = settings.pinned_version(project)
        store.prune(project, settings.keep_versions, protect=(pin,) if pin else ())
    if refused:
        logger.warning(
            "project %s: %s kept as a candidate, not served: %s (job %s)", project, version.name, refused, job_id
        )
        return {
            "model_version": version.name,
            "published": True,
            "candidate": True,
            "gate": refused,
            "scores": quality.get("scores"),
            "project": project,
            "event": request.event,
            "result": _jsonable(result),
        }
    logger.info("project %s: published %s %s(job %s)", project, version.name, _scores_text(quality), job_id)
    publishing.published(settings, project, version.name)  # e.g. re-predict on publish, subscribed by the worker
    return {
        "model_version": version.name,
        "published": True,
        "scores": quality.get("scores"),
        "project": project,
        "event": request.event,
        "result": _jsonable(result),
    }


def _scores_text(quality: dict) -> str:
    scores = quality.get("scores")
    if not scores:
        return ""
    return "scored " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())) + " "
