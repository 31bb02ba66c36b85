"""`label-studio-ml start NAME`: serve a backend directory under gunicorn (see lsml.launcher)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lsml import setting_names
from lsml.launcher import StartOptions, start
from lsml.sampling import STRATEGIES


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _port(value: str) -> int:
    number = _positive(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {number}")
    return number


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "start",
        help="serve a backend directory (gunicorn; Redis + RQ worker when available)",
        description="Serve backend directory NAME with gunicorn (gthread workers). Logs go to NAME/logs/, "
        "models and state to MODEL_DIR (default NAME/data/models). With REDIS_URL or redis-server "
        "on PATH, training runs in an RQ worker; otherwise in the server process.",
    )
    parser.add_argument("name", metavar="NAME", help="backend directory (made by `label-studio-ml init`)")
    parser.add_argument("--port", type=_port, default=9090, help="port (default 9090)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the backend, "
        "so set BASIC_AUTH_USER and BASIC_AUTH_PASS too)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="gunicorn worker processes (default $WORKERS, else 2 with Redis, 1 with embedded training)",
    )
    parser.add_argument("--threads", type=_positive, default=None, help="threads per worker (default $THREADS or 8)")
    parser.add_argument(
        "--embedded", action="store_true", help="train in the server process even when Redis is available"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="log level (default $LOG_LEVEL or info)",
    )
    parser.add_argument(
        "--score-strategy",
        choices=STRATEGIES,
        default=None,
        help="active-learning score of predictions; sets LSML_SCORE_STRATEGY (default: the model's)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.score_strategy:  # the server and worker processes inherit it
        os.environ[setting_names.LSML_SCORE_STRATEGY] = args.score_strategy
    return start(
        StartOptions(
            backend_dir=Path(args.name),
            host=args.host,
            port=args.port,
            workers=args.workers,
            threads=args.threads,
            embedded=args.embedded,
            log_level=args.log_level,
        )
    )
