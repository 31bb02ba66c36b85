"""`label-studio-ml predict BACKEND_DIR --project N`: pre-label a project's tasks in Label Studio, in batches.

Argument parsing and the progress line only; the job is `lsml.prelabel`.
Runs in this process with the backend's store (MODEL_DIR) and state; run it
again after a crash or a kill: it resumes after the last page written.
Label Studio's URL and token: `--ls-url` / `--api-key`, else what Label
Studio's `/setup` stored for the project, else LABEL_STUDIO_URL /
LABEL_STUDIO_API_KEY. The token is never printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lsml.cli._labelstudio_args import add_connection_arguments, api_token


def add_parser(subparsers) -> argparse.ArgumentParser:
    from lsml.prelabel import MODES

    parser = subparsers.add_parser("predict", help="pre-label a whole project (batches, resumable)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("backend", metavar="BACKEND_DIR", help="backend directory")
    parser.add_argument("--project", type=int, required=True, help="Label Studio project id")
    add_connection_arguments(parser)
    parser.add_argument("--mode", choices=MODES, default="missing",
                        help="missing: tasks without a prediction of this version (default); unlabelled: the "
                             "same, without annotated tasks; all: every task")
    parser.add_argument("--batch-size", type=int, default=50, help="tasks per page and predict call (default 50)")
    parser.add_argument("--max-concurrent", type=int, default=1,
                        help="predict calls running at once (default 1: live servers keep their latency)")
    parser.add_argument("--model-version", default=None, help="a kept version (default: the current one)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(func=run)
    return parser


def _format_eta(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(p) -> str:
    """`[#####.....] 120/1000 tasks  35.2 tasks/s  ETA 0:00:25` (done/total, model rate, time left)."""
    total = max(p.total, 1)
    filled = int(30 * min(p.done, total) / total)
    return (f"\r[{'#' * filled}{'.' * (30 - filled)}] {p.done}/{p.total} tasks  {p.rate:6.1f} tasks/s  "
            f"ETA {_format_eta(p.eta)}  ({p.written} written, {p.skipped} skipped)")


def run(args: argparse.Namespace) -> int:
    from lsml.backend_dir import model_ref
    from lsml.integrity import VersionIntegrityError
    from lsml.prelabel import PrelabelError, PrelabelRequest, prepare
    from lsml.settings import Settings

    backend = Path(args.backend)
    if not backend.is_dir():
        print(f"label-studio-ml predict: error: backend directory {backend} does not exist", file=sys.stderr)
        return 2
    settings = Settings.from_env(backend_dir=backend)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(settings.backend_dir))
    show = None if args.quiet else (lambda p: print(progress_line(p), end="", file=sys.stderr, flush=True))
    try:
        request = PrelabelRequest(str(args.project), args.mode, args.batch_size, args.max_concurrent,
                                  args.model_version).validated()
    except ValueError as exc:
        print(f"label-studio-ml predict: error: {exc}", file=sys.stderr)
        return 2
    try:
        job = prepare(model_ref(settings.backend_dir), request, settings, ls_url=args.ls_url,
                      api_key=api_token(args), on_progress=show)
        result = job.run()
    except (PrelabelError, VersionIntegrityError) as exc:
        if show:
            print(file=sys.stderr)
        print(f"label-studio-ml predict: error: {exc}", file=sys.stderr)
        return 1
    if show:
        print(file=sys.stderr)
    print(f"project {result['project']}: {result['written']} predictions of {result['model_version']} written, "
          f"{result['predicted']} tasks predicted, {result['skipped']} skipped, {result['total']} tasks"
          + (f" (resumed after task {result['resumed_after']})" if result["resumed_after"] is not None else ""))
    return 0
