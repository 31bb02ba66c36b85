"""`label-studio-ml sample`: print (or apply as a Data Manager tab) the next batch of tasks to label.

Argument parsing only; the ranking is `lsml.active_learning`. The token
comes from `--api-key` or `LABEL_STUDIO_API_KEY` (legacy token or personal
access token) and is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys

from lsml import sampling
from lsml.cli._labelstudio_args import add_connection_arguments, api_token, connection_problems, report_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser)
    parser.add_argument("--project", type=int, required=True, help="project id")
    parser.add_argument(
        "--strategy",
        default="margin",
        choices=sampling.STRATEGIES,
        help="how per-class probabilities are scored (default: margin)",
    )
    parser.add_argument("--k", type=int, default=50, help="batch size (default: 50)")
    parser.add_argument(
        "--diverse",
        action="store_true",
        help="spread the batch over different confusions (clusters the probability vectors)",
    )
    parser.add_argument("--model-version", default=None, help="only use predictions of this model version")
    parser.add_argument("--page-size", type=int, default=500, help="tasks per API page (default: 500)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for each Label Studio answer (default: 60; big pages of a busy server are slow)",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="create/update the Data Manager tab --view-title showing exactly this batch",
    )
    parser.add_argument("--view-title", default=None, help="tab title for --apply (default: 'lsml: next batch')")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `sample` on the `label-studio-ml` parser."""
    parser = subparsers.add_parser(
        "sample", help="choose the next tasks to label (active learning)", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Rank the project's unlabelled tasks and print (or apply) the batch; returns the exit code."""
    from lsml.active_learning import DEFAULT_VIEW_TITLE, sample_next_batch
    from lsml.labelstudio import Credential, LabelStudioError, connect

    token = api_token(args)
    problems = connection_problems(args, token)
    if args.k < 1:
        problems.append(f"--k must be >= 1, got {args.k}")
    if args.timeout <= 0:
        problems.append(f"--timeout must be > 0, got {args.timeout}")
    if args.page_size < 1:
        problems.append(f"--page-size must be >= 1, got {args.page_size}")
    if problems:
        return report_problems(problems)
    try:
        with connect(args.ls_url, Credential(args.ls_url, token), timeout=args.timeout) as client:
            batch = sample_next_batch(
                client,
                args.project,
                args.strategy,
                args.k,
                page_size=args.page_size,
                model_version=args.model_version,
                diverse=args.diverse,
                apply=args.apply,
                view_title=args.view_title or DEFAULT_VIEW_TITLE,
            )
    except LabelStudioError as exc:
        hint = ""
        if exc.status in (401, 403):
            hint = " (check the API key; legacy tokens must be enabled in the organization to work)"
        elif exc.status == 404:
            hint = f" (does project {args.project} exist and can this user see it?)"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(batch.to_dict(), indent=2))
    else:
        _print_table(batch)
    if not batch.selected:
        print("error: no task to propose: " + ("; ".join(batch.notes) or "every task is labelled"), file=sys.stderr)
        return 3
    return 0


def _print_table(batch) -> None:
    print(
        f"project {batch.project}: {batch.total_tasks} tasks, {batch.labelled} labelled (skipped), "
        f"{batch.without_prediction} without prediction, {batch.scored} ranked by {batch.strategy}"
        + (" (diverse)" if batch.diverse else "")
    )
    for note in batch.notes:
        print(f"note: {note}")
    if batch.selected:
        print(f"{'rank':>4}  {'task':>8}  {'informativeness':>15}  {'pred. score':>11}  source")
        for rank, c in enumerate(batch.selected, 1):
            score = f"{c.prediction_score:.4f}" if c.prediction_score is not None else "-"
            print(f"{rank:>4}  {c.task_id:>8}  {c.informativeness:>15.4f}  {score:>11}  {c.source}")
        print("task ids: " + ",".join(str(t) for t in batch.task_ids))
    if batch.view:
        verb = "created" if batch.view["created"] else "updated"
        print(f"{verb} Data Manager tab {batch.view['title']!r} (id {batch.view['id']}): {batch.view['url']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="label-studio-ml sample", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
