"""The HTTP API Label Studio calls, plus probes. Handlers stay thin: parse, call the runtime, answer."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, jsonify, request

from lsml import acceptance, catchup, credentials, watermark
from lsml.label_config import LabelConfigError
from lsml.loader import ModelLoadFailed, ModelNotReady, UnknownProject
from lsml.model import LabelStudioMLBase
from lsml.response import serialize_predictions, task_predictions
from lsml.server import auth, bodies, metrics, prelabel_routes
from lsml.server.blueprint import bp, current_runtime, encoded_json_response, json_body, json_bytes, json_response
from lsml.server.errors import ApiError
from lsml.server.predict_gate import PredictBusy, PredictStuck, PredictTimeout
from lsml.training.queue import TrainingRequest
from lsml.versions import served_version, version_report

logger = logging.getLogger("lsml.server")

_DROPPED_PARAMS = ("context", "login", "password")


def _load_error(exc: Exception) -> ApiError:
    if isinstance(exc, UnknownProject):
        return ApiError(404, "unknown_project", str(exc))
    if isinstance(exc, ModelNotReady):
        return ApiError(503, "model_loading", str(exc), {"Retry-After": "5"})
    if isinstance(exc, LabelConfigError):
        return ApiError(400, bodies.label_config_code(exc), str(exc))
    return ApiError(503, "model_load_failed", str(exc), {"Retry-After": "5"})


# ---- Label Studio-facing -------------------------------------------------------
@bp.route("/", methods=["GET"], endpoint="index")
@bp.route("/health", methods=["GET"], endpoint="health")
def health() -> Response:
    """`{"status": "UP", "model_class": ...}`, the reference SDK's body to the key: its own tests and tools compare
    it whole. `?details=true` adds what lsml knows beyond it (catch-up's status, and why it is off)."""
    rt = current_runtime()
    body = {"status": "UP", "model_class": rt.registry.class_name}
    if request.args.get("details", "").strip().lower() in ("1", "true", "yes"):
        body["catchup"] = _catchup_status(rt)
    return json_response(body)


_catchup_cache: dict[str, Any] = {}
#: Seconds a process reuses its catch-up status: /health has a 1 s budget (Label Studio), and without
#: LABEL_STUDIO_URL the status reads state (Redis) for the projects' /setup tokens.
CATCHUP_STATUS_TTL = 10.0


def _catchup_status(rt) -> dict:
    """Whether catch-up of missed webhooks runs here, and why not (`lsml.catchup.status`)."""
    cached = _catchup_cache.get("status")
    if cached is not None and cached[0] > time.monotonic() and cached[1] is rt:
        return cached[2]
    try:
        projects = sorted(set(rt.registry.store.projects()) | set(rt.registry.projects()))
        found = catchup.status(rt.settings, rt.registry.state, projects)
    except Exception:  # noqa: BLE001 - /health must answer whatever state does
        found = catchup.status(rt.settings)
    if found["status"] == "on":  # "off" may turn "on" with the next /setup: asked again then
        _catchup_cache["status"] = (time.monotonic() + CATCHUP_STATUS_TTL, rt, found)
    return found


@bp.route("/setup", methods=["POST"])
def setup() -> Response:
    rt = current_runtime()
    body = bodies.parse(bodies.SetupBody, json_body())
    project, hostname, token = body.project, body.hostname or None, body.access_token or None
    if (hostname or token) and not credentials.rejects_setup_hostname(rt.settings, hostname):
        # one value, so a later /setup naming another host never inherits this token
        rt.registry.remember(project, credentials.STATE_KEY, credentials.setup_value(hostname, token))
    if body.extra_params is not None:
        rt.registry.remember(project, "extra_params", body.extra_params)
    try:
        version = rt.registry.setup(project, body.schema_)
    except (UnknownProject, LabelConfigError) as exc:
        raise _load_error(exc) from None
    return json_response({"model_version": version})


@bp.route("/predict", methods=["POST"])
def predict() -> Response:
    return encoded_json_response(predict_answer(current_runtime(), json_body(max_depth=None)))


def predict_answer(rt: Any, raw: dict) -> bytes:
    """The JSON answer to a `/predict` body (`{"results": [...], "model_version": ...}`), else an ApiError.

    No Flask in here: `lsml.server.fast_predict` serves the common request with it, outside Flask."""
    body = bodies.parse(bodies.PredictBody, raw)
    tasks, project, params = body.tasks, body.project, body.params or {}
    try:
        model = rt.registry.get(project, body.label_config or None)
    except (UnknownProject, ModelNotReady, ModelLoadFailed, LabelConfigError) as exc:
        raise _load_error(exc) from None
    if not tasks:
        return json_bytes({"results": [], "model_version": model.model_version})
    kwargs = {k: v for k, v in params.items() if k not in _DROPPED_PARAMS} if params else {}
    t0: float | None = time.perf_counter()
    try:
        output = rt.predict_gate.run(model.predict, tasks, context=params.get("context"), **kwargs)
    except PredictBusy as exc:
        t0 = None  # never reached the model
        raise ApiError(503, "busy", str(exc), {"Retry-After": "1"}) from None
    except PredictStuck as exc:
        t0 = None
        raise ApiError(503, "predict_stuck", str(exc), {"Retry-After": "30"}) from None
    except PredictTimeout as exc:
        logger.error("project %s: %s.predict timed out: %s", project, type(model).__name__, exc)
        raise ApiError(504, "predict_timeout", str(exc)) from None
    except ApiError:  # the model chose the answer (label_studio_ml.exceptions.AnswerException): its status, its words
        raise
    except Exception as exc:
        logger.error(
            "project %s: %s.predict raised %s", project, type(model).__name__, type(exc).__name__, exc_info=True
        )
        raise ApiError(
            500, "model_error", f"the model's predict raised {type(exc).__name__}; see the server log"
        ) from None
    finally:
        if t0 is not None:
            metrics.PREDICT_LATENCY.observe(time.perf_counter() - t0)
        metrics.PREDICT_STUCK.set(rt.predict_gate.stuck)
    metrics.PREDICT_TASKS.inc(len(tasks))
    version = model.model_version
    try:
        results = task_predictions(serialize_predictions(output, version), untrained=model.version_dir is None)
        if len(results) != len(tasks):
            logger.warning("project %s: predict returned %d results for %d tasks", project, len(results), len(tasks))
        return json_bytes({"results": results, "model_version": version})
    except TypeError as exc:  # not a prediction, or a value JSON cannot carry
        logger.error("project %s: predict returned an unusable value: %s", project, exc)
        raise ApiError(500, "bad_prediction", f"the model returned an unusable value: {exc}") from None


@bp.route("/webhook", methods=["POST"])
def webhook() -> Response:
    rt = current_runtime()
    raw = json_body()
    body = bodies.parse(bodies.WebhookBody, raw)
    action, project, label_config = body.action, body.project_name, body.label_config
    cls = rt.registry.model_class_if_ready() or LabelStudioMLBase
    if action not in cls.TRAIN_EVENTS:
        _follow_label_config(rt, project, label_config)
        return json_response({"status": "ignored", "action": action})
    if body.project is None:
        raise ApiError(400, "missing_project", f"{action} carries no 'project'")
    try:
        label_config = bodies.checked_label_config(label_config)
    except LabelConfigError as exc:
        raise ApiError(400, bodies.label_config_code(exc), f"'project.label_config': {exc}") from None
    if label_config is not None:
        try:
            rt.registry.setup(project, label_config)
        except Exception:  # remembering the config must not lose the training trigger
            logger.warning("project %s: could not remember the webhook's label config", project, exc_info=True)
    data = client_payload(raw, "action")
    job = rt.queue.submit(TrainingRequest(project=project, event=action, payload=data, label_config=label_config))
    metrics.TRAINING_SUBMITTED.labels(action).inc()
    return json_response({"job": job, "status": "queued", "project": project, "action": action}, 201)


def client_payload(raw: dict, *drop: str) -> dict:
    """A training trigger's payload as a client sent it, without `drop` and without `catchup`.

    Why `catchup` goes: it is lsml's own marker, set by catch-up (`lsml.catchup`) on the events it recovered and
    folded into the published version's watermark; from a client it would claim annotations as trained on (and
    count them as recovered) that no training saw."""
    return {k: v for k, v in raw.items() if k not in drop and k != "catchup"}


def _follow_label_config(rt, project: str, label_config: str | None) -> None:
    """A non-training event (e.g. PROJECT_UPDATED) that carries a new label config of a loaded project: rebuild."""
    if not label_config:
        return
    try:
        if rt.registry.has_other_label_config(project, label_config):
            rt.registry.setup(project, label_config)
    except Exception:  # an ignored event must stay a fast 200
        logger.warning("could not follow the label config of a %s event", "webhook", exc_info=True)


@bp.route("/train", methods=["POST"])
def train() -> Response:
    rt = current_runtime()
    raw = json_body()
    body = bodies.parse(bodies.TrainBody, raw)
    project, label_config = body.project, body.label_config
    if label_config is not None:
        rt.registry.remember(project, "label_config", label_config)
    job = rt.queue.submit(
        TrainingRequest(project=project, event="START_TRAINING", payload=client_payload(raw), label_config=label_config)
    )
    metrics.TRAINING_SUBMITTED.labels("TRAIN").inc()
    return json_response({"job": job}, 201)


@bp.route("/job_status", methods=["POST"])
def job_status() -> Response:
    job = bodies.parse(bodies.JobStatusBody, json_body()).job
    status = prelabel_routes.prelabel_status(job) or current_runtime().queue.status(job)  # pre-labelling, else training
    if status is None:
        raise ApiError(
            404,
            "unknown_job",
            f"no job {job!r}: unknown or expired (with Redis, finished jobs are "
            "kept 24 h and failed ones 7 days; the embedded runner keeps the newest 1000 in memory)",
        )
    status = dict(status)
    status.setdefault("job_status", status.get("status"))  # the key Label Studio's MLBackendTrainJob reads
    return json_response(status)


@bp.route("/versions", methods=["GET", "POST"])
def versions() -> Response:
    rt = current_runtime()
    raw = json_body(optional=True)  # a GET may carry the project in a JSON body too
    body = bodies.parse(bodies.VersionsBody, raw)  # the query wins, but a broken body is still refused
    query = bodies.parse(bodies.VersionsQuery, request.args.to_dict())
    if query.project is None and raw.get("project") is None:
        # Label Studio 1.23's GET /versions sends no project: answer every project's versions
        store = rt.registry.store
        per_project = {p: [v.name for v in store.versions(p)] for p in store.projects()}
        names = sorted({n for names in per_project.values() for n in names}, key=lambda n: int(n[1:]))
        currents = [c.name for c in (store.current(p) for p in per_project) if c is not None]
        latest = max(currents, key=lambda n: int(n[1:])) if currents else LabelStudioMLBase.INITIAL_MODEL_VERSION
        pinned = {
            p: r["pinned"] for p, r in ((p, version_report(store, p, rt.settings)) for p in per_project) if r["pinned"]
        }
        return json_response(
            {"versions": names or [latest], "projects": per_project, "pinned": pinned, "model_version": latest}
        )
    project = query.project or body.project
    report = version_report(rt.registry.store, project, rt.settings)  # versions, details, current, pinned, latest
    report["acceptance"] = _acceptance(rt, project)  # per model version: how much of its predictions was kept
    return json_response({**report, "model_version": report["current"] or rt.registry.model_version(project)})


def _acceptance(rt, project: str) -> dict:
    try:
        return acceptance.report(rt.registry.state, project)
    except Exception:  # state (Redis) down: the versions still answer
        logger.debug("acceptance unavailable for /versions", exc_info=True)
        return {}


# ---- probes, metrics, docs ------------------------------------------------------
@bp.route("/healthz", methods=["GET"])
def healthz() -> Response:
    gate = current_runtime().predict_gate
    metrics.PREDICT_STUCK.set(gate.stuck)
    if not gate.healthy:  # every predict thread this process may hold is stuck: ask the liveness probe for a restart
        return json_response({"status": "stuck", "stuck_predictions": gate.stuck}, 503)
    return json_response({"status": "alive"})


@bp.route("/readyz", methods=["GET"])
def readyz() -> Response:
    rt = current_runtime()
    registry = rt.registry
    if registry.class_ready:
        return json_response({"status": "ready", "model_class": registry.class_name})
    error = registry.class_error
    if error is None:
        reason = "the model class is still being imported"
    elif auth.authenticated(rt.settings):
        reason = error
    else:  # the import error's text may name paths, modules or values: the log has it in full
        reason = "the model class could not be imported (see the server log)"
    return json_response({"status": "not_ready", "error": reason}, 503)


@bp.route("/metrics", methods=["GET"], endpoint="metrics")
def metrics_view() -> Response:
    rt = current_runtime()
    try:
        stats = rt.queue.stats()
    except Exception:  # a down Redis must not break the scrape
        stats = None
    try:
        _catchup_metrics(rt)
    except Exception:  # state (Redis) down
        logger.debug("catch-up watermarks unavailable for /metrics", exc_info=True)
    try:
        metrics.acceptance_state({p: acceptance.report(rt.registry.state, p) for p in rt.registry.store.projects()})
    except Exception:  # state (Redis) down
        logger.debug("acceptance unavailable for /metrics", exc_info=True)
    try:
        prelabel_routes.update_metrics(rt)
    except Exception:  # state (Redis) down: the scrape goes on without pre-labelling progress
        logger.debug("pre-labelling progress unavailable for /metrics", exc_info=True)
    try:
        scores = _version_scores(rt)
    except Exception:  # the store unreadable: the scrape goes on without scores
        logger.debug("version scores unavailable for /metrics", exc_info=True)
        scores = []
    return metrics.render(stats, scores)


def _version_scores(rt) -> list[tuple[str, str, str, float, bool]]:
    """(project, version, metric, value, served) of every kept version's held-out scores."""
    rows = []
    store = rt.registry.store
    for project in store.projects():
        served = served_version(store, rt.settings, project)
        for version in store.versions(project):
            for metric, value in sorted(((version.metadata or {}).get("scores") or {}).items()):
                if isinstance(value, int | float):
                    is_served = served is not None and served.number == version.number
                    rows.append((project, version.name, str(metric), float(value), is_served))
    return rows


def _catchup_metrics(rt) -> None:
    ages = {}
    now = time.time()
    for project in rt.registry.store.projects():
        saved = rt.registry.state.get(project, watermark.STATE_KEY)
        if isinstance(saved, dict) and isinstance(saved.get("checked_at"), (int, float)):
            ages[project] = max(0.0, now - saved["checked_at"])
    metrics.catchup_state(_catchup_status(rt)["status"] == "on", ages)


@bp.route("/openapi.json", methods=["GET"], endpoint="openapi")
def openapi_view() -> Response:
    from lsml.server.openapi import document

    return jsonify(document(current_runtime().settings.basic_auth_enabled))
