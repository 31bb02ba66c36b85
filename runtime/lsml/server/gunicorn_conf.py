"""gunicorn settings `label-studio-ml start` passes with `-c` (command-line flags override them)."""

import os

worker_class = "gthread"
timeout = 300          # gthread heartbeats from the main loop: a slow predict does not kill the worker
graceful_timeout = 30
keepalive = 5


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Drop a dead worker's live gauges from the Prometheus multiprocess files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

# gunicorn >= 27 opens a per-user control socket ($HOME/.gunicorn/gunicorn.ctl) that
# two servers of one user would fight over; older versions ignore this name.
control_socket_disable = True
