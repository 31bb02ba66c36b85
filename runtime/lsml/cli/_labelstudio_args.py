"""Label Studio connection options shared by `register` and `sample`.

`--ls-url` (default `$LABEL_STUDIO_URL`) and `--api-key` (default
`$LABEL_STUDIO_API_KEY`, read when the command runs so the token never shows
in `--help`), the usage errors when either is missing, and how usage errors
are printed (exit code 2).
"""

from __future__ import annotations

import argparse
import os
import sys

from lsml import setting_names


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ls-url",
        default=os.environ.get(setting_names.LABEL_STUDIO_URL),
        help="Label Studio URL (default: $LABEL_STUDIO_URL)",
    )
    parser.add_argument(
        "--api-key", default=None, help="legacy token or personal access token (default: $LABEL_STUDIO_API_KEY)"
    )


def api_token(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get(setting_names.LABEL_STUDIO_API_KEY)


def connection_problems(args: argparse.Namespace, token: str | None) -> list[str]:
    """What is missing to reach Label Studio, as messages saying how to provide it."""
    problems = []
    if not args.ls_url:
        problems.append("Label Studio URL missing: pass --ls-url or set LABEL_STUDIO_URL")
    if not token:
        problems.append(
            "API key missing: pass --api-key or set LABEL_STUDIO_API_KEY "
            "(Label Studio > Account & Settings > Personal Access Token or legacy token)"
        )
    return problems


def report_problems(problems: list[str]) -> int:
    """Print each usage error on stderr; returns the exit code for them (2)."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2
