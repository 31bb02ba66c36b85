"""`label-studio-ml activate BACKEND_DIR --project N VERSION`: serve a kept version (roll back or forward), pinned.

Pinned (the default), later fits publish new numbers but do not replace it,
until `label-studio-ml unpin`. Every server process sharing MODEL_DIR serves it within
LSML_RELOAD_INTERVAL (their reload watchers follow the store's `current`).
"""

from __future__ import annotations

import argparse
import sys

from lsml.cli.versions import add_backend_arguments, backend_store, print_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("activate", help="make a kept model version current (pinned)",
                                   description=__doc__.splitlines()[0])
    add_backend_arguments(parser)
    parser.add_argument("version", metavar="VERSION", help="version name (v3) or number (3)")
    parser.add_argument("--no-pin", action="store_true",
                        help="make it current without pinning: the next fit replaces it")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from lsml.integrity import VersionIntegrityError
    from lsml.versions import version_report

    found = backend_store(args, "activate")
    if found is None:
        return 2
    store, settings = found
    project = str(args.project)
    try:
        store.activate(project, args.version, pin=not args.no_pin)
    except KeyError as exc:
        print(f"label-studio-ml activate: error: {exc.args[0]}", file=sys.stderr)
        return 1
    except VersionIntegrityError as exc:
        print(f"label-studio-ml activate: error: {exc}", file=sys.stderr)
        return 1
    print_report(version_report(store, project, settings), args.json)
    return 0
