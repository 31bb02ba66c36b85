"""`label-studio-ml unpin BACKEND_DIR --project N`: end a pin; the newest version becomes current again.

From then on every fit's version becomes current as it is published. Every
server process follows within LSML_RELOAD_INTERVAL.
"""

from __future__ import annotations

import argparse

from lsml.cli.versions import add_backend_arguments, run_and_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "unpin",
        help="remove a pin: the newest model version becomes current",
        description=__doc__.splitlines()[0],
        epilog="Works on the backend's store directly (MODEL_DIR; no server, no token). Over HTTP, "
        "POST /versions/unpin is an admin route: it needs the server's LSML_ADMIN_TOKEN (Authorization: Bearer) "
        "or its Basic auth, and answers 403 when neither is configured.",
    )
    add_backend_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_and_report(args, "unpin", lambda store, project: store.unpin(project))
