"""`label-studio-ml versions BACKEND_DIR --project N`: list a project's model versions, what is current and pinned.

Argument parsing only; the report is `lsml.versions.version_report` (the same
as `GET /versions?project=N`). Reads the store under MODEL_DIR (default
`BACKEND_DIR/data/models`), so it works with the server stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lsml import setting_names
from lsml.settings import Settings


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend", metavar="BACKEND_DIR", help="backend directory")
    parser.add_argument("--project", type=int, required=True, help="Label Studio project id")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def backend_store(args: argparse.Namespace, command: str):
    """`(store, settings)` of the backend, or None after printing why not (a missing directory)."""
    from lsml.store import make_store

    backend = Path(args.backend)
    if not backend.is_dir():
        print(f"label-studio-ml {command}: error: backend directory {backend} does not exist", file=sys.stderr)
        return None
    settings = Settings.from_env(backend_dir=backend)
    return make_store(settings), settings


def run_and_report(args: argparse.Namespace, command: str, action) -> int:
    """Open the backend's store, run `action(store, project)` (a KeyError or VersionIntegrityError it raises
    is the user's error: exit 1), then print the report; the shared body of `activate` and `unpin`."""
    from lsml.integrity import VersionIntegrityError
    from lsml.versions import version_report

    found = backend_store(args, command)
    if found is None:
        return 2
    store, settings = found
    project = str(args.project)
    try:
        action(store, project)
    except KeyError as exc:
        print(f"label-studio-ml {command}: error: {exc.args[0]}", file=sys.stderr)
        return 1
    except VersionIntegrityError as exc:
        print(f"label-studio-ml {command}: error: {exc}", file=sys.stderr)
        return 1
    print_report(version_report(store, project, settings), args.json)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "versions", help="list a project's model versions (current, pinned)", description=__doc__.splitlines()[0]
    )
    add_backend_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def print_report(report: dict, as_json: bool) -> None:
    """The version table (or JSON) both `versions` and `activate` print."""
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    print(
        f"project {report['project']}: current {report['current'] or '-'}, "
        f"pinned {report['pinned'] or '- (every new fit becomes current)'}"
    )
    if report.get("pinned_by") == setting_names.LSML_PINNED_VERSIONS:
        print(
            "note: the pin comes from LSML_PINNED_VERSIONS (MLBackend spec.model.pinnedVersions); "
            "activate/unpin take effect once it no longer names this project"
        )
    metrics = report.get("metrics") or []
    if metrics:
        header = "".join(f"  {m:>10}" for m in metrics)
        print(f"{'':>6}  {'created':<19}  {'':<19}{header}")
    for item in report["details"]:
        marks = ",".join(m for m in ("current", "pinned", "candidate") if item.get(m))
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["created_at"]))
        meta = item.get("metadata") or {}
        scores = item.get("scores") or {}
        columns = "".join(f"  {scores[m]:>10.4f}" if m in scores else f"  {'-':>10}" for m in metrics)
        line = f"{item['name']:>6}  {created}  {marks:<19}{columns}  event={meta.get('event', '-')}"
        print(f"{line}  job={meta.get('job', '-')}")
        if item.get("candidate") and item.get("gate"):
            print(f"{'':>6}  not served: {item['gate']}")


def run(args: argparse.Namespace) -> int:
    from lsml.versions import version_report

    found = backend_store(args, "versions")
    if found is None:
        return 2
    store, settings = found
    report = version_report(store, str(args.project), settings)
    print_report(report, args.json)
    if not report["versions"]:
        print(f"note: project {args.project} has no published version yet", file=sys.stderr)
    return 0
