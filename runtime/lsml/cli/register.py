"""`label-studio-ml register BACKEND --ls-url URL --project N`: connect a running backend to projects.

Argument parsing only; the work is `LabelStudioClient.ensure_ml_backend`,
which is idempotent, so running `register` again is safe (it adopts the
backend already there and updates what differs). Label Studio checks the
backend's /health and /setup while registering, so the backend must be
running and reachable *from Label Studio* at the URL given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lsml import setting_names
from lsml.cli._labelstudio_args import add_connection_arguments, api_token, connection_problems, report_problems

DEFAULT_PORT = 9090


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `register` on the `label-studio-ml` parser."""
    parser = subparsers.add_parser(
        "register",
        help="connect a running backend to Label Studio projects",
        description="Create (or adopt and update) the ML backend connection in each Label Studio project. "
        "Idempotent: run it again after changing the title or the basic-auth password.",
    )
    parser.add_argument(
        "backend",
        metavar="NAME|URL",
        help="the backend's URL as Label Studio reaches it (http://host:port), or a backend directory "
        f"served by `label-studio-ml start` (then http://--host:--port, default localhost:{DEFAULT_PORT})",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--project", type=int, action="append", required=True, help="project id; repeat for several projects"
    )
    parser.add_argument("--title", default=None, help="title shown in Label Studio (default: NAME or 'lsml')")
    parser.add_argument("--description", default=None, help="description shown in Label Studio")
    parser.add_argument("--interactive", action="store_true", help="use for interactive pre-annotations")
    parser.add_argument("--host", default="localhost", help="with NAME: host Label Studio reaches (default localhost)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"with NAME: port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--basic-auth-user", default=None, help="user of the backend's HTTP Basic auth (default: $BASIC_AUTH_USER)"
    )
    parser.add_argument(
        "--basic-auth-pass",
        default=None,
        help="its password (default: $BASIC_AUTH_PASS; prefer the env var: argv is visible in ps)",
    )
    parser.add_argument("--extra-params", default=None, help="JSON object handed to the model's setup")
    parser.add_argument("--timeout", type=float, default=None, help="Label Studio's request timeout to the backend (s)")
    parser.set_defaults(func=run)
    return parser


def backend_url(backend: str, host: str, port: int) -> str:
    """A URL stays as given; a backend directory becomes the address `start` serves it on."""
    if backend.startswith(("http://", "https://")):
        return backend.rstrip("/")
    if not Path(backend).is_dir():
        raise ValueError(f"{backend!r} is neither an http(s) URL nor a backend directory")
    return f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    """Register the backend in every --project; returns the exit code (1 if any project failed)."""
    from lsml.labelstudio import Credential, LabelStudioError, connect

    token = api_token(args)
    user = args.basic_auth_user or os.environ.get(setting_names.BASIC_AUTH_USER)
    password = args.basic_auth_pass or os.environ.get(setting_names.BASIC_AUTH_PASS)
    problems = connection_problems(args, token)
    if bool(user) != bool(password):
        problems.append(
            "basic auth needs both a user and a password (--basic-auth-user/--basic-auth-pass "
            "or BASIC_AUTH_USER/BASIC_AUTH_PASS)"
        )
    extra_params = None
    if args.extra_params is not None:
        try:
            extra_params = json.loads(args.extra_params)
        except ValueError as exc:
            problems.append(f"--extra-params is not JSON: {exc}")
        else:
            if not isinstance(extra_params, dict):
                problems.append("--extra-params must be a JSON object")
    try:
        url = backend_url(args.backend, args.host, args.port)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        return report_problems(problems)

    title = args.title or (Path(args.backend).name if not args.backend.startswith("http") else None)
    failures = 0
    with connect(args.ls_url, Credential(args.ls_url, token)) as client:
        for project in args.project:
            try:
                backend, created = client.ensure_ml_backend(
                    project,
                    url,
                    title=title,
                    description=args.description,
                    is_interactive=args.interactive,
                    basic_auth=(user, password) if user and password else None,
                    extra_params=extra_params,
                    timeout=args.timeout,
                )
            except LabelStudioError as exc:
                failures += 1
                print(f"error: project {project}: {exc}{_hint(exc, project)}", file=sys.stderr)
                continue
            verb = "registered" if created else "already registered, up to date"
            state = backend.get("readable_state") or backend.get("state") or "?"
            print(f"project {project}: {verb}: ML backend {backend['id']} -> {url} ({state})")
    return 1 if failures else 0


def _hint(exc, project: int) -> str:
    message = exc.message.lower()
    if exc.status is None:
        return " (is Label Studio running at --ls-url?)"
    if "ml_block_local_ip" in message:
        return ""  # the client already explained Label Studio's address refusal
    if exc.status in (401, 403):
        return " (check the API key; legacy tokens only work where the organization enables them)"
    if exc.status == 404:
        return f" (does project {project} exist and can this user see it?)"
    if exc.status == 400:
        return " (Label Studio could not use the backend at that URL: is it running and reachable from Label Studio?)"
    return ""
