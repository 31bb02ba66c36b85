"""The name of every environment variable the runtime reads, and the serving defaults the operator writes again.

Why a module of its own: `lsml.settings` declares each variable once (name, default, description) and
reads them; the operator writes the same names into pods and must not import the runtime's settings
(or anything heavier than this: it imports no module). So the names live here, and
`tests/runtime/test_setting_names.py` checks this module against `lsml.settings` both ways, and that the
image, the compose template and the operator use the settings' defaults.
"""

from __future__ import annotations

# lsml.settings.Settings
LSML_BACKEND_DIR = "LSML_BACKEND_DIR"
LSML_MODEL = "LSML_MODEL"
MODEL_DIR = "MODEL_DIR"
REDIS_URL = "REDIS_URL"
LSML_QUEUE = "LSML_QUEUE"
BASIC_AUTH_USER = "BASIC_AUTH_USER"
BASIC_AUTH_PASS = "BASIC_AUTH_PASS"
LABEL_STUDIO_URL = "LABEL_STUDIO_URL"
LABEL_STUDIO_API_KEY = "LABEL_STUDIO_API_KEY"
LSML_PREDICT_CONCURRENCY = "LSML_PREDICT_CONCURRENCY"
LSML_PREDICT_WAIT_TIMEOUT = "LSML_PREDICT_WAIT_TIMEOUT"
LSML_PREDICT_TIMEOUT = "LSML_PREDICT_TIMEOUT"
LSML_FIT_TIMEOUT = "LSML_FIT_TIMEOUT"
LSML_FIT_ATTEMPTS = "LSML_FIT_ATTEMPTS"
LSML_PRELABEL_ATTEMPTS = "LSML_PRELABEL_ATTEMPTS"
LSML_PRELABEL_MAX_RUNNING = "LSML_PRELABEL_MAX_RUNNING"
LSML_PRELABEL_MAX_QUEUED = "LSML_PRELABEL_MAX_QUEUED"
LSML_MODEL_LOAD_TIMEOUT = "LSML_MODEL_LOAD_TIMEOUT"
LSML_MAX_BODY_BYTES = "LSML_MAX_BODY_BYTES"
LSML_MAX_LOADED_MODELS = "LSML_MAX_LOADED_MODELS"
LSML_MEDIA_MAX_BYTES = "LSML_MEDIA_MAX_BYTES"
LSML_MEDIA_TIMEOUT = "LSML_MEDIA_TIMEOUT"
LSML_MEDIA_ALLOW_PRIVATE = "LSML_MEDIA_ALLOW_PRIVATE"
LSML_ADMIN_TOKEN = "LSML_ADMIN_TOKEN"
LSML_KEEP_VERSIONS = "LSML_KEEP_VERSIONS"
LSML_RELOAD_INTERVAL = "LSML_RELOAD_INTERVAL"
LSML_SCORE_STRATEGY = "LSML_SCORE_STRATEGY"
LOG_LEVEL = "LOG_LEVEL"
LSML_LOCAL_FILES_ROOTS = "LSML_LOCAL_FILES_ROOTS"
LSML_PRELABEL_ON_PUBLISH = "LSML_PRELABEL_ON_PUBLISH"
LSML_PINNED_VERSIONS = "LSML_PINNED_VERSIONS"
LSML_CATCHUP_INTERVAL = "LSML_CATCHUP_INTERVAL"

# lsml.settings.ServingSettings (gunicorn, read by lsml.server.gunicorn_conf)
HOST = "HOST"
PORT = "PORT"
WORKERS = "WORKERS"
THREADS = "THREADS"
LSML_CLIENT_TIMEOUT = "LSML_CLIENT_TIMEOUT"

# lsml.settings.OTHER_VARIABLES
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
LABEL_STUDIO_HOST = "LABEL_STUDIO_HOST"
LABEL_STUDIO_ACCESS_TOKEN = "LABEL_STUDIO_ACCESS_TOKEN"
LSML_LABEL_INTERFACE = "LSML_LABEL_INTERFACE"

#: `ServingSettings`' defaults that deployments spell out again (the image's ENV, the compose template, the
#: operator's server container): the test holds them equal to the settings'.
DEFAULT_PORT = 9090
DEFAULT_THREADS = 8
