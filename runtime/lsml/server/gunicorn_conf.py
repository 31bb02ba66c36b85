"""The one gunicorn configuration every lsml deployment runs.

The image's CMD, the compose file, the operator's server container and
`label-studio-ml start` all run exactly `SERVE_COMMAND` (below, plus the
interpreter for `start`); what differs between them is only environment:
`HOST`, `PORT`, `WORKERS`, `THREADS`, `LSML_CLIENT_TIMEOUT`, `LOG_LEVEL`,
`LSML_BACKEND_DIR` (`lsml.settings.ServingSettings`). Command-line flags
would override these, which is why none are passed.
"""

import os

from lsml import setting_names
from lsml.settings import ServingSettings

SERVE_COMMAND = ["gunicorn", "--config", "python:lsml.server.gunicorn_conf", "_wsgi:app"]

_serving = ServingSettings.from_env()

# The workers inherit LOG_LEVEL upper case: a reference SDK `_wsgi.py` hands it to logging.config.dictConfig
# at import, which knows INFO but not info ("Unable to configure handler 'console'": no worker boots);
# gunicorn's own loglevel (below) takes either case.
if os.environ.get(setting_names.LOG_LEVEL, "").strip():
    os.environ[setting_names.LOG_LEVEL] = os.environ[setting_names.LOG_LEVEL].strip().upper()

bind = [f"[{_serving.host}]:{_serving.port}" if ":" in _serving.host else f"{_serving.host}:{_serving.port}"]
workers = _serving.workers
threads = _serving.threads
chdir = os.path.abspath(_serving.backend_dir)
loglevel = _serving.log_level
errorlog = "-"

# gthread's pool for the app, every wait on a client on the main loop (lsml/server/gunicorn_worker.py)
worker_class = "lsml.server.gunicorn_worker.ThreadWorker"
timeout = 300  # the main loop heartbeats: a slow predict does not get the worker killed
graceful_timeout = 20  # below the supervisor's and Kubernetes' grace periods, so a stop is never a SIGKILL
keepalive = 5  # seconds an idle connection may wait for its next request
sendfile = False  # responses are gathered in memory and sent by the worker (no file descriptors)
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # heartbeat off disk; works read-only

# gunicorn >= 27 opens a per-user control socket ($HOME/.gunicorn/gunicorn.ctl) that
# two servers of one user would fight over; older versions ignore this name.
control_socket_disable = True


def on_starting(server):
    """Refuse a port another server listens on, at once and saying so (gunicorn would retry for 5 s first)."""
    from lsml.server.gunicorn_worker import refuse_taken_addresses

    refuse_taken_addresses(server.cfg.address)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Free a dead worker's slot on the connection board; drop its live gauges from the Prometheus files."""
    from lsml.server.gunicorn_worker import forget

    forget(worker)
    if os.environ.get(setting_names.PROMETHEUS_MULTIPROC_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
