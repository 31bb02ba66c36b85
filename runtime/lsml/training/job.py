"""`run_training`: the one job function every queue runs (embedded thread, RQ worker).

It takes only picklable arguments and rebuilds everything else (store,
state, model class) from `settings` and `model_ref`, so it runs the same in
the server process or in a worker on another machine.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from lsml.integrity import verify_version
from lsml.model import BuildContext, ModelRef, build_model, load_model_class, model_ref_string
from lsml.settings import Settings
from lsml.state import make_state
from lsml.store import make_store
from lsml.training import deadline, publishing
from lsml.training.queue import TrainingRequest

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
        if state.get(project, "label_config") != label_config:
            state.set(project, "label_config", label_config)
    else:
        label_config = state.get(project, "label_config")
    logger.info("project %s: training %s on %s (job %s)", project, model_ref_string(model_ref), request.event, job_id)
    with store.training_lock(project):
        current = store.latest(project)  # the newest version, even while an older one is pinned (store.activate)
        if current is not None:
            verify_version(current.path, current.name)  # fit builds on it: refuse a tampered one
        with store.staging(project) as output_dir:
            model = build_model(cls, project, label_config, BuildContext(settings, state, current, output_dir))
            kwargs: dict[str, Any] = {}
            if _accepts_kwargs(model.fit):
                kwargs["job_id"] = job_id
                if request.coalesced:
                    kwargs["coalesced"] = request.coalesced
                if request.coalesced_dropped:
                    kwargs["coalesced_dropped"] = request.coalesced_dropped
            result = model.fit(request.event, request.payload, **kwargs)
            if result is False:
                logger.info("project %s: fit published nothing (job %s)", project, job_id)
                return {
                    "model_version": current.name if current else model.model_version,
                    "published": False,
                    "project": project,
                    "event": request.event,
                    "result": None,
                }
            with deadline.publishing():  # an embedded job abandoned at LSML_FIT_TIMEOUT publishes nothing
                version = store.publish(
                    project,
                    output_dir,
                    metadata={
                        "event": request.event,
                        "job": job_id,
                        "model": model_ref_string(model_ref),
                        "result": _jsonable(result),
                    },
                )
        pin = settings.pinned_version(project)
        store.prune(project, settings.keep_versions, protect=(pin,) if pin else ())
    logger.info("project %s: published %s (job %s)", project, version.name, job_id)
    publishing.published(settings, project, version.name)  # e.g. re-predict on publish, subscribed by the worker
    return {
        "model_version": version.name,
        "published": True,
        "project": project,
        "event": request.event,
        "result": _jsonable(result),
    }
