"""`create_app(model_ref, settings=None)`: the Flask app gunicorn serves (`_wsgi:app`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from lsml.loader import ModelRegistry
from lsml.model import ModelRef
from lsml.server import auth, errors, metrics
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

    registry = ModelRegistry(model_ref, settings, on_loaded=metrics.model_loaded, on_evicted=metrics.model_evicted)

    def _published(project: str, result: dict) -> None:
        if result.get("published"):
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

    metrics.install(app)
    auth.install(app, settings)
    errors.install(app)
    app.register_blueprint(bp)
    registry.start()
    logger.info(
        "serving %s (model dir %s, %s training)",
        registry.class_name,
        settings.model_dir,
        "RQ" if settings.redis_url else "embedded",
    )
    return app
