"""`label-studio-ml activate BACKEND_DIR --project N VERSION`: serve a kept version (roll back or forward), pinned.

Pinned (the default), later fits publish new numbers but do not replace it,
until `label-studio-ml unpin`. Every server process sharing MODEL_DIR serves it within
LSML_RELOAD_INTERVAL (their reload watchers follow the store's `current`).
"""

from __future__ import annotations

import argparse

from lsml.cli.versions import add_backend_arguments, run_and_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "activate",
        help="make a kept model version current (pinned)",
        description=__doc__.splitlines()[0],
        epilog="Works on the backend's store directly (MODEL_DIR; no server, no token). Over HTTP, "
        "POST /versions/activate is an admin route: it needs the server's LSML_ADMIN_TOKEN (Authorization: Bearer) "
        "or its Basic auth, and answers 403 when neither is configured.",
    )
    add_backend_arguments(parser)
    parser.add_argument("version", metavar="VERSION", help="version name (v3) or number (3)")
    parser.add_argument(
        "--no-pin", action="store_true", help="make it current without pinning: the next fit replaces it"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_and_report(
        args, "activate", lambda store, project: store.activate(project, args.version, pin=not args.no_pin)
    )
