"""`label-studio-ml worker NAME`: run trainings of backend NAME from the RQ queue.

Argument parsing and wiring only; the worker itself is `lsml.training.rq_worker.run_worker`.
With `LSML_PRELABEL_ON_PUBLISH` it subscribes pre-labelling to what the
worker publishes (`lsml.training.publishing`).
Run several for more trainings at once (different projects train in
parallel; one project never trains twice at once). `--healthcheck` exits 0
when a worker on this host is registered with Redis (the compose file's
healthcheck).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from pathlib import Path

from lsml.backend_dir import model_ref
from lsml.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "worker",
        help="run trainings from Redis (RQ) in this process",
        description="Run `fit` for training jobs that servers of backend NAME put on the RQ queue "
        "(needs REDIS_URL). Stop with Ctrl-C/SIGTERM: the running training finishes first.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", nargs="?", default=".", help="backend directory (default: current dir)")
    parser.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL)")
    parser.add_argument("--queue", help="RQ queue name (default: $LSML_QUEUE or lsml-training)")
    parser.add_argument("--worker-name", help="RQ worker name (default: random, unique)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument(
        "--healthcheck", action="store_true", help="exit 0 if a worker of this host is registered in Redis, else 1"
    )


def run(args: argparse.Namespace) -> int:
    """Start the worker (or run the healthcheck); returns the exit code."""
    backend = Path(args.name)
    if not backend.is_dir():
        print(
            f"label-studio-ml worker: error: backend directory {backend} does not exist "
            "(create one with `label-studio-ml init`)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = Settings.from_env(backend_dir=backend)
        changes = {k: v for k, v in (("redis_url", args.redis_url), ("queue_name", args.queue)) if v}
        settings = settings.replace(**changes) if changes else settings
        if not settings.redis_url:
            raise ValueError(
                "the worker needs Redis: set REDIS_URL or pass --redis-url "
                "(without Redis, `label-studio-ml start` trains in the server process)"
            )
        from lsml.training.rq_worker import healthcheck, run_worker

        if args.healthcheck:
            return 0 if healthcheck(settings) else 1
        ref = model_ref(settings.backend_dir)
    except ValueError as exc:  # BackendDirError is a ValueError too
        print(f"label-studio-ml worker: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(settings.backend_dir))
    if settings.prelabel_on_publish:  # every version this worker publishes queues re-prediction
        from lsml.prelabel_jobs import after_publish
        from lsml.training import publishing

        publishing.on_publish(after_publish)
    run_worker(ref, settings, name=args.worker_name, burst=args.burst)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="label-studio-ml worker", description=__doc__.splitlines()[0])
    add_arguments(parser)
    # `kill -USR1 PID` prints every thread's stack to the worker's log: a worker that will not stop can say where
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return run(parser.parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
