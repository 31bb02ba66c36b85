"""`label-studio-ml init NAME --script PATH[:Class]`: scaffold a backend directory (see lsml.backend_dir)."""

from __future__ import annotations

import argparse
import sys

from lsml.backend_dir import scaffold, split_script_spec


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "init",
        help="create a backend directory from a model script",
        description="Create backend directory NAME: model.py (your script), _wsgi.py, requirements.txt, "
        "Dockerfile, docker-compose.yml, README.md.",
    )
    parser.add_argument("name", metavar="NAME", help="directory to create")
    parser.add_argument(
        "--script",
        required=True,
        metavar="PATH[:Class]",
        help="your model file; :Class picks the LabelStudioMLBase subclass when it has several",
    )
    parser.add_argument("--force", action="store_true", help="overwrite files of an existing directory")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    script, class_name = split_script_spec(args.script)
    written = scaffold(args.name, script, class_name, force=args.force)
    print(f"created {args.name}/ with " + ", ".join(p.name for p in written), file=sys.stderr)
    print(f"next: label-studio-ml start {args.name}", file=sys.stderr)
    return 0
