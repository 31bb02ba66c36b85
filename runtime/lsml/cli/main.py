"""`label-studio-ml` entry point: one subcommand module per command, each with `add_parser(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from lsml import __version__

# One module lsml.cli.<name> per command, listed in help order (`MODULES` names the exceptions).
COMMANDS: tuple[str, ...] = ("init", "start")
COMMANDS += ("register",)  # connect a running backend to Label Studio: lsml/cli/register.py
COMMANDS += ("worker",)  # RQ training worker: lsml/cli/worker_command.py
COMMANDS += ("sample",)  # active learning: lsml/cli/sample.py
COMMANDS += ("versions", "activate", "unpin")  # list, pin / roll back, unpin model versions
COMMANDS += ("predict",)  # background pre-labelling of a whole project: lsml/cli/predict.py
#: Commands whose module is not named after them: `worker` would be the third `worker.py` of the tree
#: (beside the RQ worker, lsml/training/rq_worker.py, and the gunicorn one, lsml/server/gunicorn_worker.py).
MODULES: dict[str, str] = {"worker": "worker_command"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="label-studio-ml",
        description="Create, run and connect Label Studio ML backends.",
    )
    parser.add_argument("--version", action="version", version=f"lsml {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lsml.cli.{MODULES.get(name, name)}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # BackendDirError and bad settings explain themselves
        print(f"label-studio-ml {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
