"""`label-studio-ml worker NAME`: run trainings of backend NAME from the RQ queue.

Argument parsing only; the worker itself is `lsml.training.worker.run_worker`.
Run several for more trainings at once (different projects train in
parallel; one project never trains twice at once).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lsml.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=".", help="backend directory (default: current dir)")
    parser.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL)")
    parser.add_argument("--queue", help="RQ queue name (default: $LSML_QUEUE or lsml-training)")
    parser.add_argument("--worker-name", help="RQ worker name (default: random, unique)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")


def resolve_model_ref(settings: Settings) -> str:
    """`LSML_MODEL`, else the backend's `_wsgi.py` `MODEL` (the same rule as the server)."""
    if settings.model:
        return settings.model
    try:
        from lsml.backend_dir import model_ref  # the core's rule for backend directories
    except ImportError:  # pragma: no cover - older trees
        model_ref = None
    if model_ref is not None:
        ref = model_ref(settings.backend_dir)
        if ref:
            return ref if isinstance(ref, str) else f"{ref.__module__}:{ref.__qualname__}"
    raise ValueError(f"no model for {settings.backend_dir}: set LSML_MODEL=module:Class or MODEL in _wsgi.py")


def run(args: argparse.Namespace) -> int:
    """Start the worker; returns the exit code."""
    backend = Path(args.name)
    if not backend.is_dir():
        print(f"error: backend directory {backend} does not exist (create one with `label-studio-ml init`)",
              file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(backend_dir=backend)
        changes = {k: v for k, v in (("redis_url", args.redis_url), ("queue_name", args.queue)) if v}
        settings = settings.replace(**changes) if changes else settings
        if not settings.redis_url:
            raise ValueError("the worker needs Redis: set REDIS_URL or pass --redis-url "
                             "(without Redis, `label-studio-ml start` trains in the server process)")
        model_ref = resolve_model_ref(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lsml.training.worker import run_worker

    sys.path.insert(0, str(settings.backend_dir))
    run_worker(model_ref, settings, name=args.worker_name, burst=args.burst)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="label-studio-ml worker", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
