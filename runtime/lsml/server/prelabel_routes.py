"""`POST /prelabel`: queue a background pre-labelling job of a project; its progress in `/job_status` and `/metrics`.

Routes on the same blueprint as `routes.py` (same Basic auth). The job runs
on RQ workers with `REDIS_URL`, else in a thread of this server process
(`lsml.prelabel_jobs`); `/job_status` answers for it with `"kind":
"prelabel"` and `progress` (`done`, `total`, `rate`, `eta`, `written`, ...).
`/metrics` reports `lsml_prelabel_tasks_done{project}` /
`lsml_prelabel_tasks_total{project}` from the job's checkpoint in the
project's state, so a job on a worker shows too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Response
from prometheus_client import Gauge

from lsml.prelabel import CHECKPOINT_KEY, PrelabelRequest
from lsml.prelabel_jobs import PrelabelJobs, PrelabelJobsFull
from lsml.server import bodies
from lsml.server.blueprint import bp, json_body, json_response
from lsml.server.errors import ApiError

logger = logging.getLogger("lsml.server")

PRELABEL_DONE = Gauge(
    "lsml_prelabel_tasks_done",
    "Tasks the newest pre-labelling job of a project has gone through",
    ["project"],
    multiprocess_mode="livemostrecent",
)
PRELABEL_TOTAL = Gauge(
    "lsml_prelabel_tasks_total",
    "Tasks in the project the newest pre-labelling job goes through",
    ["project"],
    multiprocess_mode="livemostrecent",
)

_EXTENSION = "lsml_prelabel"
#: How long an embedded pre-labelling job waits for the registry to build its project's model (a /predict
#: waits LSML_MODEL_LOAD_TIMEOUT; a background job may wait for a heavy model, holding one of its threads).
MODEL_WAIT_SECONDS = 3600.0
_lock = threading.Lock()


def prelabel_jobs(app: Any = None) -> PrelabelJobs:
    """This app's pre-labelling jobs (made on first use, so apps that never pre-label start no client)."""
    from flask import current_app

    from lsml.prelabel_jobs import make_prelabel_jobs

    app = app or current_app
    rt = app.extensions["lsml"]
    with _lock:
        jobs = app.extensions.get(_EXTENSION)
        if jobs is None:
            registry = rt.registry

            def models(project: str, label_config: str | None) -> Any:
                # a job waits for a model still loading as long as building one itself would have taken;
                # a build that fails raises at once (ModelLoadFailed)
                return registry.get(project, label_config, timeout=MODEL_WAIT_SECONDS)

            jobs = app.extensions[_EXTENSION] = make_prelabel_jobs(
                rt.settings, registry.model_ref, slots=rt.predict_gate.slots, models=models
            )
    return jobs


def on_published(app: Any, project: str, version: str) -> None:
    """The embedded runner published `version`: re-predict when LSML_PRELABEL_ON_PUBLISH is on."""
    from lsml.prelabel_jobs import after_publish

    settings = app.extensions["lsml"].settings
    if settings.prelabel_on_publish and not settings.redis_url:  # with Redis the worker queues it
        try:
            after_publish(settings, project, version, jobs=prelabel_jobs(app))
        except PrelabelJobsFull as exc:  # the version is published; re-prediction is best effort
            logger.warning("project %s: no re-prediction of %s: %s", project, version, exc)


def prelabel_status(job: str) -> dict | None:
    """The status of a pre-labelling job (None: not one, e.g. a training job)."""
    return prelabel_jobs().status(job)


def update_metrics(rt: Any) -> None:
    """Set the progress gauges from each known project's checkpoint (read at scrape time)."""
    from flask import current_app

    projects = set(rt.registry.store.projects()) | set(rt.registry.loaded())
    jobs = current_app.extensions.get(_EXTENSION)
    if jobs is not None:
        projects |= set(jobs.projects())
    for project in projects:
        saved = rt.registry.state.get(project, CHECKPOINT_KEY)
        if isinstance(saved, dict):
            PRELABEL_DONE.labels(project).set(int(saved.get("done") or 0))
            PRELABEL_TOTAL.labels(project).set(int(saved.get("total") or 0))


@bp.route("/prelabel", methods=["POST"], endpoint="prelabel")
def prelabel() -> Response:
    body = bodies.parse(bodies.PrelabelBody, json_body())
    project = body.project
    try:
        request = PrelabelRequest(**body.model_dump()).validated()
    except ValueError as exc:
        raise ApiError(400, "invalid_prelabel", str(exc)) from None
    try:
        job, created = prelabel_jobs().submit(request)
    except PrelabelJobsFull as exc:
        # 429, not 503: the server is well, its caller asked for more jobs than it takes at once
        raise ApiError(429, "prelabel_busy", str(exc), {"Retry-After": "30"}) from None
    logger.info("project %s: pre-labelling job %s %s", project, job, "queued" if created else "already active")
    return json_response(
        {"job": job, "status": "queued" if created else "active", "project": project, "created": created},
        201 if created else 200,
    )
