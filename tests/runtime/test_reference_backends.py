"""Backend directories written for the reference SDK (HumanSignal/label-studio-ml-backend), served by lsml.

Real gunicorn processes and real HTTP: `label-studio-ml start DIR`, and the reference examples' own
`gunicorn ... _wsgi:app` command.
"""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.fixtures.label_studio import EXAMPLES_DIR, SENTIMENT_CONFIG

# What every reference `_wsgi.py` runs at import (label_studio_ml/default_configs/_wsgi.py.tmpl, the examples).
REFERENCE_LOGGING = """import os
import logging.config

logging.config.dictConfig({
  "version": 1,
  "disable_existing_loggers": False,
  "formatters": {"standard": {"format": "[%(asctime)s] [%(levelname)s] [%(name)s::%(funcName)s::%(lineno)d] %(message)s"}},
  "handlers": {"console": {"class": "logging.StreamHandler", "level": os.getenv('LOG_LEVEL'),
                           "stream": "ext://sys.stdout", "formatter": "standard"}},
  "root": {"level": os.getenv('LOG_LEVEL'), "handlers": ["console"], "propagate": True}
})
"""


def predict(url: str, text: str = "a lovely film") -> requests.Response:
    body = {"tasks": [{"id": 1, "data": {"text": text}}], "project": "1.1", "label_config": SENTIMENT_CONFIG}
    return requests.post(f"{url}/predict", json=body, timeout=60)


@pytest.mark.parametrize("log_level", ["", "debug"], ids=["unset", "lower-case"])
def test_a_wsgi_py_configuring_logging_at_import_boots_under_start(start_ml_backend, tmp_path, log_level):
    """`start` used to hand the workers LOG_LEVEL=info, which dictConfig refuses: no worker booted."""
    source = tmp_path / "text_classifier"
    shutil.copytree(EXAMPLES_DIR / "text_classifier", source, ignore=shutil.ignore_patterns("data", "logs"))
    wsgi = source / "_wsgi.py"
    wsgi.write_text(REFERENCE_LOGGING + wsgi.read_text())
    backend = start_ml_backend(source=source, env={"LOG_LEVEL": log_level})
    answer = predict(backend.url)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1, answer.text  # untrained: no prediction for the task, but served
    server_log = (backend.backend_dir / "logs" / "server.log").read_text()
    assert "Unable to configure handler" not in server_log
    expected = "[DEBUG]" if log_level else "[INFO]"
    assert expected in server_log, server_log[-2000:]  # the example's own console handler, at the level asked
