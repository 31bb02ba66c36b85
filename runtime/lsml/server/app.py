"""`create_app(model_ref, settings=None)`: the Flask app gunicorn serves (`_wsgi:app`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from lsml.loader import ModelRegistry
from lsml.model import ModelRef
from lsml.server import auth, errors, fast_predict, metrics
from lsml.server.predict_gate import PredictGate
from lsml.settings import Settings
from lsml.training import TrainingQueue, make_queue

logger = logging.getLogger("lsml.server")


@dataclass
class Runtime:
    """What the handlers share: found at `app.extensions["lsml"]`."""

    settings: Settings
    registry: ModelRegistry
    queue: TrainingQueue
    predict_gate: PredictGate


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    logging.getLogger("lsml").setLevel(level)


def create_app(model_ref: ModelRef, settings: Settings | None = None, queue: TrainingQueue | None = None) -> Flask:
    """A Flask app serving `model_ref` (`"module:Class"` or the class itself).

    Importing the model class and building model instances happen in
    background threads, so the app answers `/health` and `/setup` at once.
    """
    settings = settings or Settings.from_env()
    if isinstance(model_ref, str) and settings.model:
        model_ref = settings.model  # LSML_MODEL overrides _wsgi.py's MODEL
    _configure_logging(settings.log_level)
    app = Flask("lsml", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask's DefaultJSONProvider; JSONProvider lacks it

    def _loaded(project: str, model_version: str, seconds: float) -> None:
        metrics.model_loaded(
            project, model_version, seconds, fit_seconds=_fit_seconds(registry, project, model_version)
        )

    registry = ModelRegistry(model_ref, settings, on_loaded=_loaded, on_evicted=metrics.model_evicted)

    def _published(project: str, result: dict) -> None:
        if result.get("published") and not result.get("candidate"):  # a candidate is not served
            registry.reload(project)
            from lsml.server.prelabel_routes import on_published

            on_published(app, project, str(result.get("model_version")))  # re-predict (LSML_PRELABEL_ON_PUBLISH)

    if queue is None:
        queue = make_queue(settings, model_ref, on_finished=_published)
    app.extensions["lsml"] = Runtime(
        settings=settings,
        registry=registry,
        queue=queue,
        predict_gate=PredictGate(settings.predict_concurrency, settings.predict_wait_timeout, settings.predict_timeout),
    )

    from lsml.server import routes, version_routes  # noqa: F401 - importing a route module adds its routes to bp
    from lsml.server.blueprint import bp

    # the registry's threads, in this process: a no-op but in a worker gunicorn --preload forked (ModelRegistry.start)
    app.before_request(registry.start)
    metrics.install(app)
    auth.install(app, settings)
    errors.install(app)
    app.register_blueprint(bp)
    if settings.predict_fast_path:
        fast_predict.install(app)
    registry.start()
    _start_catchup(app, settings, registry, queue)
    logger.info(
        "serving %s (model dir %s, %s training)",
        registry.class_name,
        settings.model_dir,
        "RQ" if settings.redis_url else "embedded",
    )
    return app


def _fit_seconds(registry: ModelRegistry, project: str, model_version: str) -> float | None:
    """The fit duration a published version recorded (None for the untrained model or an older version)."""
    try:
        value = registry.store.find(project, model_version).metadata.get("fit_seconds")
    except (KeyError, ValueError, OSError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _start_catchup(app: Flask, settings: Settings, registry: ModelRegistry, queue: TrainingQueue) -> None:
    """Each server process runs catch-up's periodic check (`lsml.catchup`); leases keep it to one per project."""
    if settings.catchup_interval <= 0:
        return
    from lsml.catchup import CatchupRunner, Checker, FileLease, RedisLease

    def train_events() -> tuple[str, ...]:
        cls = registry.model_class_if_ready()
        return tuple(cls.TRAIN_EVENTS) if cls is not None else ()

    connection = getattr(queue, "connection", None)
    lease = (
        RedisLease(connection, settings.queue_name, settings.catchup_interval)
        if settings.redis_url and connection is not None
        else FileLease(settings.model_dir)
    )
    checker = Checker(settings, registry.store, registry.state, queue, train_events)
    runner = CatchupRunner(checker, lease, settings.catchup_interval, on_result=metrics.catchup_checked)
    app.extensions["lsml_catchup"] = runner
    runner.start()
