"""`label-studio-ml predict BACKEND_DIR --project N`: pre-label a project's tasks in Label Studio, in batches.

Argument parsing and the progress line only; the job is `lsml.prelabel`.
Runs in this process with the backend's store (MODEL_DIR) and state; run it
again after a crash or a kill: it resumes after the last page written.
With `--server URL` it queues the job on a running backend instead
(`POST /prelabel`) and follows `/job_status` until it ends. `/prelabel` is an
admin route: it takes `--admin-token` (default $LSML_ADMIN_TOKEN, sent as
`Authorization: Bearer`) or Basic auth (`--server-user`/`--server-password`,
default BASIC_AUTH_USER/BASIC_AUTH_PASS); a server with neither configured
refuses it (403). `/job_status` gets the Basic credentials when given.
Label Studio's URL and token: `--ls-url` / `--api-key`, else what Label
Studio's `/setup` stored for the project, else LABEL_STUDIO_URL /
LABEL_STUDIO_API_KEY. The token is never printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lsml import setting_names
from lsml.cli._labelstudio_args import add_connection_arguments, api_token

#: Seconds `--server` keeps polling a server that answers 503 (Redis down) before giving up.
UNAVAILABLE_PATIENCE = 120.0


def add_parser(subparsers) -> argparse.ArgumentParser:
    from lsml.prelabel import MODES

    parser = subparsers.add_parser(
        "predict", help="pre-label a whole project (batches, resumable)", description=__doc__.splitlines()[0]
    )
    parser.add_argument("backend", metavar="BACKEND_DIR", nargs="?", help="backend directory (not with --server)")
    parser.add_argument("--server", default=None, help="URL of a running backend: queue the job there instead")
    parser.add_argument("--server-user", default=None, help="its Basic auth user (default: $BASIC_AUTH_USER)")
    parser.add_argument("--server-password", default=None, help="its Basic auth password (default: $BASIC_AUTH_PASS)")
    parser.add_argument(
        "--admin-token",
        default=None,
        help="the server's LSML_ADMIN_TOKEN, sent as a Bearer token to POST /prelabel, an admin route that "
        "refuses requests without it or Basic auth (default: $LSML_ADMIN_TOKEN)",
    )
    parser.add_argument("--project", type=int, required=True, help="Label Studio project id")
    add_connection_arguments(parser)
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="missing",
        help="missing: tasks without a prediction of this version (default); unlabelled: the "
        "same, without annotated tasks; all: every task",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="tasks per predict call, write and checkpoint (default: lsml.prelabel.BATCH_SIZE_DEFAULT, 200)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=1,
        help="predict calls running at once (default 1: live servers keep their latency)",
    )
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
    """`[#####.....] 120/1000 tasks  35.2 tasks/s  ETA 0:00:25` (done/total, model rate, time left).

    `p` is a `lsml.prelabel.Progress` or its `to_dict()` (what `/job_status` reports)."""
    d = p.to_dict() if hasattr(p, "to_dict") else p
    done, total = d.get("done", 0), d.get("total", 0)
    filled = int(30 * min(done, max(total, 1)) / max(total, 1))
    return (
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} tasks  {d.get('rate') or 0.0:6.1f} tasks/s  "
        f"ETA {_format_eta(d.get('eta'))}  ({d.get('written', 0)} written, {d.get('skipped', 0)} skipped)"
    )


class _Bearer:
    """`Authorization: Bearer <token>` for requests (its repr never shows the token)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer(***)"


def _on_server(args: argparse.Namespace, show) -> int:
    """Queue the job on a running backend and follow its progress; the exit code."""
    import os
    import time

    import requests

    user = args.server_user or os.environ.get(setting_names.BASIC_AUTH_USER)
    password = args.server_password or os.environ.get(setting_names.BASIC_AUTH_PASS)
    auth = (user, password or "") if user else None
    # without a Secret file's newline (as the server reads it): in a header it would fail, quoting the token
    admin_token = (args.admin_token or os.environ.get(setting_names.LSML_ADMIN_TOKEN) or "").strip()
    admin_auth = _Bearer(admin_token) if admin_token else auth
    base = args.server.rstrip("/")
    body = {"project": args.project, "mode": args.mode, "max_concurrent": args.max_concurrent}
    if args.batch_size is not None:
        body["batch_size"] = args.batch_size
    if args.model_version:
        body["version"] = args.model_version
    try:
        r = requests.post(base + "/prelabel", json=body, auth=admin_auth, timeout=30)
        if r.status_code not in (200, 201):
            print(f"label-studio-ml predict: error: {base} answered {r.status_code}: {r.text[:500]}", file=sys.stderr)
            return 1
        job = r.json()["job"]
        down_since = None
        while True:
            r = requests.post(base + "/job_status", json={"job": job}, auth=auth, timeout=30)
            if r.status_code == 404:  # expired, or Redis came back without its data: nothing will ever end it
                print(
                    f"label-studio-ml predict: error: job {job} is unknown to {base} (Redis lost its data?); "
                    "run the command again to resume",
                    file=sys.stderr,
                )
                return 1
            if r.status_code == 503:  # Redis restarting: the job rides it out, so does this loop (for a while)
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > UNAVAILABLE_PATIENCE:
                    print(
                        f"label-studio-ml predict: error: {base} cannot report job {job} for "
                        f"{UNAVAILABLE_PATIENCE:.0f} s: {r.text[:300]}",
                        file=sys.stderr,
                    )
                    return 1
                time.sleep(1.0)
                continue
            down_since = None
            if r.status_code != 200:
                print(
                    f"label-studio-ml predict: error: {base} answered {r.status_code} for job {job}: {r.text[:300]}",
                    file=sys.stderr,
                )
                return 1
            st = r.json()
            p = st.get("progress") or {}
            if show and p:
                show(p)
            if st.get("status") in ("finished", "failed"):
                break
            time.sleep(1.0)
    except (requests.RequestException, ValueError, KeyError) as exc:
        print(
            f"label-studio-ml predict: error: cannot follow the job on {base}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    if show:
        print(file=sys.stderr)
    if st["status"] == "failed":
        print(f"label-studio-ml predict: error: job {job} failed: {st.get('error')}", file=sys.stderr)
        return 1
    print(
        f"project {args.project}: job {job} finished: {p.get('written', 0)} predictions of "
        f"{p.get('model_version')} written, {p.get('predicted', 0)} tasks predicted, {p.get('skipped', 0)} skipped, "
        f"{p.get('total', 0)} tasks"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from lsml.backend_dir import model_ref
    from lsml.integrity import VersionIntegrityError
    from lsml.prelabel import BATCH_SIZE_DEFAULT, PrelabelError, PrelabelRequest, prepare
    from lsml.settings import Settings

    show = None if args.quiet else (lambda p: print(progress_line(p), end="", file=sys.stderr, flush=True))
    if args.server:
        return _on_server(args, show)
    if not args.backend:
        print("label-studio-ml predict: error: give BACKEND_DIR (or --server URL)", file=sys.stderr)
        return 2
    backend = Path(args.backend)
    if not backend.is_dir():
        print(f"label-studio-ml predict: error: backend directory {backend} does not exist", file=sys.stderr)
        return 2
    settings = Settings.from_env(backend_dir=backend)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(settings.backend_dir))
    try:
        request = PrelabelRequest(
            str(args.project),
            args.mode,
            BATCH_SIZE_DEFAULT if args.batch_size is None else args.batch_size,
            args.max_concurrent,
            args.model_version,
        ).validated()
    except ValueError as exc:
        print(f"label-studio-ml predict: error: {exc}", file=sys.stderr)
        return 2
    try:
        job = prepare(
            model_ref(settings.backend_dir),
            request,
            settings,
            ls_url=args.ls_url,
            api_key=api_token(args),
            on_progress=show,
        )
        result = job.run()
    except (PrelabelError, VersionIntegrityError) as exc:
        if show:
            print(file=sys.stderr)
        print(f"label-studio-ml predict: error: {exc}", file=sys.stderr)
        return 1
    if show:
        print(file=sys.stderr)
    print(
        f"project {result['project']}: {result['written']} predictions of {result['model_version']} written, "
        f"{result['predicted']} tasks predicted, {result['skipped']} skipped, {result['total']} tasks"
        + (f" (resumed after task {result['resumed_after']})" if result["resumed_after"] is not None else "")
    )
    return 0
